import type { DataSource } from "typeorm";
import { LONGEST_WINDOW_MS, PANE_MS, paneOf } from "../core/market";
import { PanesRepo } from "../db/panes.repo";
import { WindowWrites } from "../db/windows.repo";
import { WindowEngine } from "./window.engine";

/** Window ends recomputed per transaction. */
const WINDOW_CHUNK_MS = 3_600_000;

export interface RebuildResult {
  panes: number;
  windowsChanged: number;
  windowsRemoved: number;
}

export interface RebuildOptions {
  /** Quotes re-read per transaction. @default 10 minutes */
  chunkMs?: number;
  /** Called after each chunk with (done, total) chunks. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Recomputes panes from stored quotes with event times in [from, to), then every visible window that
 * holds one of those panes: after a backfill, or after a fix to the aggregation. Windows that change get
 * revision + 1; windows left without trades are removed. Windows beyond what the engine has emitted are
 * left for the engine.
 */
export async function rebuildWindows(
  ds: DataSource,
  from: Date,
  to: Date,
  opts: RebuildOptions = {},
): Promise<RebuildResult> {
  const start = paneOf(from.getTime());
  const end = paneOf(to.getTime() - 1) + PANE_MS;
  const chunk = Math.max(PANE_MS, paneOf(opts.chunkMs ?? 600_000));
  const total = Math.ceil((end - start) / chunk) + 1;
  const result: RebuildResult = { panes: 0, windowsChanged: 0, windowsRemoved: 0 };
  let done = 0;
  const panes = new PanesRepo(ds);
  const writes = new WindowWrites(ds);
  for (let t = start; t < end; t += chunk) {
    result.panes += await panes.rebuild(new Date(t), new Date(Math.min(t + chunk, end)));
    opts.onProgress?.(++done, total);
  }
  const { emittedUntil } = await writes.progress();
  const last = emittedUntil ? Math.min(end + LONGEST_WINDOW_MS, emittedUntil.getTime()) : start;
  const engine = new WindowEngine(ds);
  for (let t = start; t < last; t += WINDOW_CHUNK_MS) {
    result.windowsChanged += await engine.recompute(t, Math.min(t + WINDOW_CHUNK_MS, last));
  }
  if (last > start) result.windowsRemoved = await writes.removeEmpty(new Date(start), new Date(last));
  opts.onProgress?.(done + 1, total);
  return result;
}
