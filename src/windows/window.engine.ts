import type { DataSource, EntityManager } from "typeorm";
import { log } from "../log";
import { PANE_MS, paneOf } from "./panes.sql";
import { ALLOWED_LATENESS_MS, LONGEST_WINDOW_MS, WINDOW_MS, WindowSize } from "./windows";

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

/** A 10-second partial aggregate, as stored in panes_10s. */
interface Pane {
  n: number;
  pxSum: number;
  pvSum: number;
  volume: number;
  high: number;
  low: number;
  openPx: number;
  openTs: number;
  openSeq: number;
  closePx: number;
  closeTs: number;
  closeSeq: number;
}

/** One computed window, in the column order of the upsert. */
interface WindowValues {
  size: WindowSize;
  end: number;
  symbol: string;
  open: number;
  high: number;
  low: number;
  close: number;
  mean: number;
  vwap: number | null;
  volume: number;
  n: number;
}

interface Changed {
  size: WindowSize;
  windowEnd: Date;
  symbol: string;
  revision: number;
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
  private readonly panes = new Map<string, Map<number, Pane>>();
  private loadedFrom = Infinity;
  private loadedTo = -Infinity;
  private running: Promise<void> | null = null;
  private again = false;
  private readonly maxEnds: number;

  constructor(
    private readonly ds: DataSource,
    private readonly opts: WindowEngineOptions = {},
  ) {
    this.maxEnds = opts.maxEndsPerStep ?? 360;
  }

  /** Loads how far windows were computed (they survive restarts). */
  async start(): Promise<void> {
    const [row] = await this.ds.query(
      `SELECT emitted_until AS "emittedUntil", final_until AS "finalUntil" FROM window_progress WHERE id = 1`,
    );
    this.emittedUntil = row?.emittedUntil ? row.emittedUntil.getTime() : null;
    this.finalUntil = row?.finalUntil ? row.finalUntil.getTime() : null;
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
        } catch (err) {
          log.error({ err }, "window engine step failed; retried on the next commit");
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
      const [{ first }] = await this.ds.query(`SELECT min(bucket) AS first FROM panes_10s`);
      if (!first) return false;
      from = first.getTime() as number;
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
      await this.ds.transaction(async (tx) => {
        const changed = await upsert(tx, windows);
        // Unchanged windows are not written (nor returned); a rewritten one has revision > 0.
        event.revised = byWindow(changed.filter((r) => r.revision > 0)).map(
          ({ size, windowEnd, symbols }) => ({ size, windowEnd, symbols }),
        );
        event.opened = byWindow(changed.filter((r) => r.revision === 0)).map(
          ({ size, windowEnd, symbols }) => ({ size, windowEnd, count: symbols.length }),
        );
        if (finalTo > (this.finalUntil ?? -Infinity)) event.finalUntil = new Date(finalTo);
        const finalUntil = event.finalUntil ?? (this.finalUntil === null ? null : new Date(this.finalUntil));
        await tx.query(
          `INSERT INTO window_progress (id, emitted_until, final_until) VALUES (1, $1, $2)
           ON CONFLICT (id) DO UPDATE SET emitted_until = excluded.emitted_until, final_until = excluded.final_until`,
          [new Date(Math.max(to, from)), finalUntil],
        );
      });
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
    return (await this.ds.transaction((tx) => upsert(tx, windows))).length;
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
      this.store(
        await this.ds.query(`${PANE_SELECT} WHERE bucket >= $1 AND bucket < $2`, [new Date(a), new Date(z)]),
      );
    }
    if (dirty.length) {
      this.store(
        await this.ds.query(`${PANE_SELECT} WHERE bucket = ANY($1::timestamptz[])`, [
          dirty.map((b) => new Date(b)),
        ]),
      );
    }
    // Forget panes older than any window the next steps can compute or revise.
    const keepFrom = lo - LONGEST_WINDOW_MS;
    if (keepFrom > this.loadedFrom) {
      for (const bySymbol of this.panes.values())
        for (const b of bySymbol.keys()) if (b < keepFrom) bySymbol.delete(b);
      this.loadedFrom = keepFrom;
    }
  }

  private store(rows: (Pane & { symbol: string; bucket: Date })[]): void {
    for (const r of rows) {
      let bySymbol = this.panes.get(r.symbol);
      if (!bySymbol) this.panes.set(r.symbol, (bySymbol = new Map()));
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

const PANE_SELECT = `SELECT symbol, bucket, n, px_sum AS "pxSum", pv_sum AS "pvSum", volume, high, low,
  open_px AS "openPx", (extract(epoch FROM open_ts) * 1000)::float8 AS "openTs", open_seq::float8 AS "openSeq",
  close_px AS "closePx", (extract(epoch FROM close_ts) * 1000)::float8 AS "closeTs", close_seq::float8 AS "closeSeq"
  FROM panes_10s`;

/** Merges the panes of one symbol in [start, end); null when none had a trade. */
function merge(
  bySymbol: Map<number, Pane>,
  start: number,
  end: number,
): Omit<WindowValues, "size" | "end" | "symbol"> | null {
  let n = 0,
    pxSum = 0,
    pvSum = 0,
    volume = 0,
    high = -Infinity,
    low = Infinity;
  let first: Pane | null = null;
  let last: Pane | null = null;
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

/** Upserts windows in one statement; RETURNING lists those inserted or changed. */
async function upsert(tx: EntityManager, w: WindowValues[]): Promise<Changed[]> {
  if (!w.length) return [];
  return tx.query(
    `INSERT INTO window_aggregates AS w
       (size, window_end, symbol, window_start, open, high, low, close, mean, vwap, volume, tick_count)
     SELECT t.size::window_size, to_timestamp(t.end_ms / 1000.0), t.symbol,
            to_timestamp(t.end_ms / 1000.0) - t.len_ms * interval '1 millisecond',
            t.open, t.high, t.low, t.close, t.mean, t.vwap, t.volume, t.n
     FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::float8[], $6::float8[], $7::float8[],
                 $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::int4[])
          AS t(size, end_ms, symbol, len_ms, open, high, low, close, mean, vwap, volume, n)
     ON CONFLICT (size, window_end, symbol) DO UPDATE SET
       open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
       mean = excluded.mean, vwap = excluded.vwap, volume = excluded.volume, tick_count = excluded.tick_count,
       revision = w.revision + 1, updated_at = now()
     WHERE (w.open, w.high, w.low, w.close, w.mean, w.vwap, w.volume, w.tick_count)
           IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close,
                             excluded.mean, excluded.vwap, excluded.volume, excluded.tick_count)
     RETURNING w.size, w.window_end AS "windowEnd", w.symbol, w.revision`,
    [
      w.map((x) => x.size),
      w.map((x) => x.end),
      w.map((x) => x.symbol),
      w.map((x) => WINDOW_MS[x.size]),
      w.map((x) => x.open),
      w.map((x) => x.high),
      w.map((x) => x.low),
      w.map((x) => x.close),
      w.map((x) => x.mean),
      w.map((x) => x.vwap),
      w.map((x) => x.volume),
      w.map((x) => x.n),
    ],
  );
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
function byWindow(rows: Changed[]): { size: WindowSize; windowEnd: Date; symbols: string[] }[] {
  const byKey = new Map<string, { size: WindowSize; windowEnd: Date; symbols: string[] }>();
  for (const r of rows) {
    const key = `${r.size}|${r.windowEnd.getTime()}`;
    let e = byKey.get(key);
    if (!e) byKey.set(key, (e = { size: r.size, windowEnd: r.windowEnd, symbols: [] }));
    e.symbols.push(r.symbol);
  }
  return [...byKey.values()].sort((a, b) => a.windowEnd.getTime() - b.windowEnd.getTime());
}
