import type { DataSource } from "typeorm";
import { mergePanesSql, PANE_MS, paneOf } from "./panes.sql";
import { LONGEST_WINDOW_MS } from "./windows";
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
  for (let t = start; t < end; t += chunk) {
    const [a, b] = [new Date(t), new Date(Math.min(t + chunk, end))];
    await ds.transaction(async (tx) => {
      await tx.query(`DELETE FROM panes_10s WHERE bucket >= $1 AND bucket < $2`, [a, b]);
      const merged = await tx.query(
        `${mergePanesSql(`(SELECT symbol, event_time, seq, price, size FROM quotes WHERE event_time >= $1 AND event_time < $2)`)} RETURNING 1`,
        [a, b],
      );
      result.panes += merged.length;
    });
    opts.onProgress?.(++done, total);
  }
  const [{ emitted }] = await ds.query(`SELECT max(emitted_until) AS emitted FROM window_progress`);
  const last = emitted ? Math.min(end + LONGEST_WINDOW_MS, emitted.getTime()) : start;
  const engine = new WindowEngine(ds);
  for (let t = start; t < last; t += WINDOW_CHUNK_MS) {
    result.windowsChanged += await engine.recompute(t, Math.min(t + WINDOW_CHUNK_MS, last));
  }
  if (last > start) {
    const removed = await ds.query(
      `DELETE FROM window_aggregates w WHERE w.window_end > $1 AND w.window_end <= $2
         AND NOT EXISTS (SELECT 1 FROM panes_10s p WHERE p.symbol = w.symbol
                         AND p.bucket >= w.window_start AND p.bucket < w.window_end)
       RETURNING 1`,
      [new Date(start), new Date(last)],
    );
    result.windowsRemoved = removed.length;
  }
  opts.onProgress?.(done + 1, total);
  return result;
}
