import type { DataSource } from "typeorm";
import { PANE_MS, paneOf } from "../core/market";
import { OutageLog } from "../core/outage";
import { isConnectionLoss } from "../db/database";
import { PanesRepo, type PaneRow } from "../db/panes.repo";
import { WindowWrites, type ChangedWindow, type WindowValues } from "../db/windows.repo";
import { log } from "../log";
import { ALLOWED_LATENESS_MS, LONGEST_WINDOW_MS, WINDOW_MS, WindowSize } from "../core/market";
import { reportWindowLagFrom } from "../metrics";

/** What the ingest loop reports after each committed batch. */
export interface CommitInfo {
  /** Highest accepted event time − 2 s; null before any trade. */
  watermark: Date | null;
  /** Starts of the 10-second panes that received new trades in the batch. */
  buckets: Date[];
  inserted: number;
}

/** Published after each engine step commits. */
export interface WindowsEvent {
  /** Windows that became visible: one entry per (size, end), with how many symbols it holds. */
  opened: { size: WindowSize; windowEnd: Date; count: number }[];
  /** Visible windows a late trade changed (revision + 1), per (size, end). */
  revised: { size: WindowSize; windowEnd: Date; symbols: string[] }[];
  /** Windows up to this end (inclusive) are final. */
  finalUntil: Date | null;
  watermark: Date;
}

export interface WindowEngineOptions {
  /** Most window ends (10 s apart) computed in one transaction when catching up. @default 360 (an hour) */
  maxEndsPerStep?: number;
  /** Called after each step commits. */
  onWindows?: (event: WindowsEvent) => void;
}

const SIZES = Object.values(WindowSize);

/**
 * Turns panes into window aggregates as the watermark advances. The panes of the last 15 minutes are
 * kept in memory, refreshed from panes_10s for exactly the buckets that commits report; each window end
 * the watermark passes is merged from its 6/30/90 panes (never by rescanning quotes) and upserted in one
 * statement; windows a late trade touches are recomputed with revision + 1; windows become final
 * ALLOWED_LATENESS_MS after their end (window_progress.final_until moves; rows are not rewritten).
 *
 * Steps run one at a time; commits reported while one runs are merged into the next, so a slow step
 * never queues work without bound.
 */
export class WindowEngine {
  private watermark: number | null = null;
  private emittedUntil: number | null = null;
  private finalUntil: number | null = null;
  /** Window ends up to which the running step computes windows. */
  private inFlightUntil: number | null = null;
  private readonly lateBuckets = new Set<number>();
  private readonly dirtyBuckets = new Set<number>();
  /** symbol → bucket start → pane, for buckets in [loadedFrom, loadedTo). */
  private readonly panes = new Map<string, Map<number, PaneRow>>();
  private loadedFrom = Infinity;
  private loadedTo = -Infinity;
  private running: Promise<void> | null = null;
  private again = false;
  private readonly outage = new OutageLog("window engine");
  private readonly maxEnds: number;

  private readonly panesRepo: PanesRepo;
  private readonly writes: WindowWrites;

  constructor(
    ds: DataSource,
    private readonly opts: WindowEngineOptions = {},
  ) {
    this.maxEnds = opts.maxEndsPerStep ?? 360;
    this.panesRepo = new PanesRepo(ds);
    this.writes = new WindowWrites(ds);
  }

  /** Loads how far windows were computed (they survive restarts). */
  async start(): Promise<void> {
    const { emittedUntil, finalUntil } = await this.writes.progress();
    this.emittedUntil = emittedUntil?.getTime() ?? null;
    this.finalUntil = finalUntil?.getTime() ?? null;
    // The newest engine started is the one the metric follows (a replica runs one while it ingests).
    reportWindowLagFrom(() =>
      this.watermark === null || this.emittedUntil === null
        ? null
        : Math.max(0, paneOf(this.watermark) - this.emittedUntil),
    );
  }

  /** Takes one committed batch's news; returns at once (the step runs in the background). */
  onCommit(info: CommitInfo): void {
    if (info.watermark) this.watermark = Math.max(this.watermark ?? -Infinity, info.watermark.getTime());
    // A pane whose first window (ending at bucket + 10 s) is out, or being computed by a step that may
    // have read the panes before this commit, revises visible windows.
    const out = Math.max(this.emittedUntil ?? -Infinity, this.inFlightUntil ?? -Infinity);
    for (const b of info.buckets) {
      const bucket = b.getTime();
      this.dirtyBuckets.add(bucket);
      if (bucket + PANE_MS <= out) this.lateBuckets.add(bucket);
    }
    this.kick();
  }

  /** Resolves when every reported commit has been processed. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          while (await this.step());
          this.outage.ok();
        } catch (err) {
          // Postgres restarting is an outage, logged once; anything else is a failed step.
          if (isConnectionLoss(err)) this.outage.failed(err, { retry: "on the next commit" });
          else log.error({ err }, "window engine step failed; retried on the next commit");
        }
      } while (this.again);
      this.running = null;
    })();
  }

  /** One transaction of work; true when more is pending (catching up over a long gap). */
  private async step(): Promise<boolean> {
    if (this.watermark === null) return false;
    const wm = this.watermark;
    const target = paneOf(wm);
    let from = this.emittedUntil;
    if (from === null) {
      const first = await this.panesRepo.first();
      if (!first) return false;
      from = first.getTime();
    }
    const to = Math.min(target, from + this.maxEnds * PANE_MS);
    const finalTo = Math.min(to, wm - ALLOWED_LATENESS_MS);
    const late = [...this.lateBuckets];
    if (to <= from && !late.length && (this.finalUntil ?? -Infinity) >= finalTo) return false;
    this.lateBuckets.clear();

    const event: WindowsEvent = { opened: [], revised: [], finalUntil: null, watermark: new Date(wm) };
    this.inFlightUntil = to;
    try {
      await this.refreshPanes(Math.min(from, ...late) + PANE_MS - LONGEST_WINDOW_MS, Math.max(to, from));
      const windows: WindowValues[] = [];
      if (late.length && this.emittedUntil !== null) this.revisedWindows(late, this.emittedUntil, windows);
      for (let end = from + PANE_MS; end <= to; end += PANE_MS) this.windowsEnding(end, SIZES, windows);
      if (finalTo > (this.finalUntil ?? -Infinity)) event.finalUntil = new Date(finalTo);
      const finalUntil = event.finalUntil ?? (this.finalUntil === null ? null : new Date(this.finalUntil));
      const changed = await this.writes.step(windows, {
        emittedUntil: new Date(Math.max(to, from)),
        finalUntil,
      });
      // Unchanged windows are not written (nor returned); a rewritten one has revision > 0.
      event.revised = byWindow(changed.filter((r) => r.revision > 0)).map(({ size, windowEnd, symbols }) => ({
        size,
        windowEnd,
        symbols,
      }));
      event.opened = byWindow(changed.filter((r) => r.revision === 0)).map(
        ({ size, windowEnd, symbols }) => ({
          size,
          windowEnd,
          count: symbols.length,
        }),
      );
    } catch (err) {
      for (const b of late) this.lateBuckets.add(b); // revised on the next step, not lost
      throw err;
    } finally {
      this.inFlightUntil = null;
    }
    this.emittedUntil = Math.max(to, from);
    if (event.finalUntil) this.finalUntil = event.finalUntil.getTime();
    if (event.opened.length || event.revised.length || event.finalUntil) this.opts.onWindows?.(event);
    return to < target;
  }

  /**
   * Recomputes every window ending in (from, to] from panes_10s as they are now (after panes were
   * rebuilt from quotes); returns how many were inserted or changed. Not for use while steps run.
   */
  async recompute(from: number, to: number): Promise<number> {
    this.panes.clear();
    [this.loadedFrom, this.loadedTo] = [Infinity, -Infinity];
    await this.refreshPanes(from + PANE_MS - LONGEST_WINDOW_MS, to);
    const windows: WindowValues[] = [];
    for (let end = from + PANE_MS; end <= to; end += PANE_MS) this.windowsEnding(end, SIZES, windows);
    return (await this.writes.step(windows)).length;
  }

  /**
   * Makes the in-memory panes hold panes_10s for buckets in [lo, hi): loads what was never loaded,
   * re-reads the buckets commits reported, and forgets what no window can need any more.
   */
  private async refreshPanes(lo: number, hi: number): Promise<void> {
    const ranges: [number, number][] = [];
    if (this.loadedFrom > this.loadedTo || hi <= this.loadedFrom || lo >= this.loadedTo) {
      this.panes.clear();
      this.dirtyBuckets.clear();
      ranges.push([lo, hi]);
      [this.loadedFrom, this.loadedTo] = [lo, hi];
    } else {
      if (lo < this.loadedFrom) ranges.push([lo, this.loadedFrom]);
      if (hi > this.loadedTo) ranges.push([this.loadedTo, hi]);
      this.loadedFrom = Math.min(this.loadedFrom, lo);
      this.loadedTo = Math.max(this.loadedTo, hi);
    }
    const dirty = [...this.dirtyBuckets].filter(
      (b) => b >= this.loadedFrom && b < this.loadedTo && !ranges.some(([a, z]) => b >= a && b < z),
    );
    this.dirtyBuckets.clear();
    for (const [a, z] of ranges) {
      this.store(await this.panesRepo.range(new Date(a), new Date(z)));
    }
    if (dirty.length) {
      this.store(await this.panesRepo.buckets(dirty.map((b) => new Date(b))));
    }
    // Forget panes older than any window the next steps can compute or revise.
    const keepFrom = lo - LONGEST_WINDOW_MS;
    if (keepFrom > this.loadedFrom) {
      for (const bySymbol of this.panes.values())
        for (const b of bySymbol.keys()) if (b < keepFrom) bySymbol.delete(b);
      this.loadedFrom = keepFrom;
    }
  }

  private store(rows: PaneRow[]): void {
    for (const r of rows) {
      let bySymbol = this.panes.get(r.symbol);
      if (!bySymbol) this.panes.set(r.symbol, (bySymbol = new Map<number, PaneRow>()));
      bySymbol.set(r.bucket.getTime(), r);
    }
  }

  /** Windows of every size ending at `end`, one per symbol with trades in it. */
  private windowsEnding(end: number, sizes: readonly WindowSize[], out: WindowValues[]): void {
    for (const [symbol, bySymbol] of this.panes) {
      for (const size of sizes) {
        const w = merge(bySymbol, end - WINDOW_MS[size], end);
        if (w) out.push({ size, end, symbol, ...w });
      }
    }
  }

  /** Emitted windows (ending at or before `until`) that contain one of the late panes. */
  private revisedWindows(late: number[], until: number, out: WindowValues[]): void {
    const ends = new Map<number, Set<WindowSize>>();
    for (const b of late) {
      for (const size of SIZES) {
        for (let end = b + PANE_MS; end <= Math.min(b + WINDOW_MS[size], until); end += PANE_MS) {
          let s = ends.get(end);
          if (!s) ends.set(end, (s = new Set()));
          s.add(size);
        }
      }
    }
    for (const [end, sizes] of [...ends].sort((a, b) => a[0] - b[0]))
      this.windowsEnding(end, [...sizes], out);
  }
}

/** Merges the panes of one symbol in [start, end); null when none had a trade. */
function merge(
  bySymbol: Map<number, PaneRow>,
  start: number,
  end: number,
): Omit<WindowValues, "size" | "end" | "symbol"> | null {
  let n = 0,
    pxSum = 0,
    pvSum = 0,
    volume = 0,
    high = -Infinity,
    low = Infinity;
  let first: PaneRow | null = null;
  let last: PaneRow | null = null;
  for (let b = start; b < end; b += PANE_MS) {
    const p = bySymbol.get(b);
    if (!p) continue;
    n += p.n;
    pxSum += p.pxSum;
    pvSum += p.pvSum;
    volume += p.volume;
    if (p.high > high) high = p.high;
    if (p.low < low) low = p.low;
    // Panes are disjoint in time and visited in order: the first pane holds the window's first trade.
    first ??= p;
    last = p;
  }
  if (!first || !last) return null;
  return {
    open: first.openPx,
    high,
    low,
    close: last.closePx,
    mean: pxSum / n,
    vwap: volume > 0 ? pvSum / volume : null,
    volume,
    n,
  };
}

/**
 * The same news in events of at most `maxSymbols` symbol names and `maxWindows` window entries each, so
 * that every piece fits one Postgres NOTIFY and reaches subscribers on every replica.
 */
export function splitWindowsEvent(e: WindowsEvent, maxSymbols = 200, maxWindows = 50): WindowsEvent[] {
  const pieces: WindowsEvent[] = [];
  const base = { finalUntil: e.finalUntil, watermark: e.watermark };
  for (let i = 0; i < e.opened.length; i += maxWindows) {
    pieces.push({ ...base, opened: e.opened.slice(i, i + maxWindows), revised: [] });
  }
  let revised: WindowsEvent["revised"] = [];
  let symbols = 0;
  const flush = () => {
    if (revised.length) pieces.push({ ...base, opened: [], revised });
    revised = [];
    symbols = 0;
  };
  for (const r of e.revised) {
    for (let i = 0; i < r.symbols.length; i += maxSymbols) {
      const part = r.symbols.slice(i, i + maxSymbols);
      if (symbols + part.length > maxSymbols || revised.length >= maxWindows) flush();
      revised.push({ size: r.size, windowEnd: r.windowEnd, symbols: part });
      symbols += part.length;
    }
  }
  flush();
  return pieces.length ? pieces : [{ ...base, opened: [], revised: [] }];
}

/** Changed rows grouped per (size, end), oldest first. Events carry these: small enough for NOTIFY. */
function byWindow(rows: ChangedWindow[]): { size: WindowSize; windowEnd: Date; symbols: string[] }[] {
  const byKey = new Map<string, { size: WindowSize; windowEnd: Date; symbols: string[] }>();
  for (const r of rows) {
    const key = `${r.size}|${r.windowEnd.getTime()}`;
    let e = byKey.get(key);
    if (!e) byKey.set(key, (e = { size: r.size, windowEnd: r.windowEnd, symbols: [] }));
    e.symbols.push(r.symbol);
  }
  return [...byKey.values()].sort((a, b) => a.windowEnd.getTime() - b.windowEnd.getTime());
}
