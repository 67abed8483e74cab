import type { HistoricTrade, TradeHistory } from "./trade.history";

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;

/** What a bar needs of a trade. */
export type BarTrade = Pick<HistoricTrade, "id" | "timeMs" | "nanos" | "price" | "size">;

/**
 * Open, high, low, close, volume, count and VWAP of some trades, with open and close the first and last
 * trade by (event time, id): the same definitions as tickgraph's windows, so a bar and the window over
 * the same interval agree.
 */
export class BarAgg {
  o = 0;
  h = -Infinity;
  l = Infinity;
  c = 0;
  v = 0;
  n = 0;
  /** Σ price × size. */
  pv = 0;
  private openMs = Infinity;
  private openNanos = 0;
  private openId = 0;
  private closeMs = -Infinity;
  private closeNanos = 0;
  private closeId = 0;

  add(t: BarTrade): void {
    this.n++;
    this.v += t.size;
    this.pv += t.price * t.size;
    if (t.price > this.h) this.h = t.price;
    if (t.price < this.l) this.l = t.price;
    if (precedes(t.timeMs, t.nanos, t.id, this.openMs, this.openNanos, this.openId)) {
      this.o = t.price;
      this.openMs = t.timeMs;
      this.openNanos = t.nanos;
      this.openId = t.id;
    }
    if (precedes(this.closeMs, this.closeNanos, this.closeId, t.timeMs, t.nanos, t.id)) {
      this.c = t.price;
      this.closeMs = t.timeMs;
      this.closeNanos = t.nanos;
      this.closeId = t.id;
    }
  }

  /** Volume-weighted average price, Σ(p·s)/Σs, unrounded (0 for a bar of zero volume). */
  get vw(): number {
    return this.v > 0 ? this.pv / this.v : 0;
  }
}

function precedes(
  aMs: number,
  aNanos: number,
  aId: number,
  bMs: number,
  bNanos: number,
  bId: number,
): boolean {
  return aMs < bMs || (aMs === bMs && (aNanos < bNanos || (aNanos === bNanos && aId < bId)));
}

/** A bar: its interval's start and the aggregate of the trades in it. */
export interface Bar {
  startMs: number;
  agg: BarAgg;
}

/**
 * A bar timeframe as Alpaca writes it: `[1-59]Min` (or `T`), `[1-23]Hour` (or `H`), `1Day` (or `D`).
 * Bars are aligned to the Unix epoch, so a day is a UTC day (the mock's market never closes). Undefined
 * for anything else, weeks and months included (the mock does not serve them).
 */
export function parseTimeframe(text: string): number | undefined {
  const m = /^(\d{1,2})(Min|T|Hour|H|Day|D)$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  if (m[2] === "Min" || m[2] === "T") return n >= 1 && n <= 59 ? n * MINUTE_MS : undefined;
  if (m[2] === "Hour" || m[2] === "H") return n >= 1 && n <= 23 ? n * 3_600_000 : undefined;
  return n === 1 ? DAY_MS : undefined;
}

export function bucketOf(ms: number, sizeMs: number): number {
  return Math.floor(ms / sizeMs) * sizeMs;
}

/**
 * The bars of one symbol aggregated from its trade history: every bucket of `sizeMs` whose start lies in
 * [`from`, `to`] (epoch ms, both optional), ascending. A bucket holds every trade of the history whose
 * time falls in it, late trades included, so a bar is exact as long as the history still holds the
 * bucket's trades.
 */
export function barsFromHistory(
  history: TradeHistory,
  sym: number,
  sizeMs: number,
  from?: number,
  to?: number,
): Bar[] {
  const first = from === undefined ? -Infinity : Math.ceil(from / sizeMs) * sizeMs;
  const last = to === undefined ? Infinity : bucketOf(to, sizeMs);
  if (first > last) return [];
  const buckets = new Map<number, BarAgg>();
  const limit = 100_000;
  let fromId: number | undefined;
  do {
    const page = history.page(sym, {
      fromId,
      start: Number.isFinite(first) ? { ms: first, nanos: 0 } : undefined,
      end: Number.isFinite(last) ? { ms: last + sizeMs - 1, nanos: 999_999 } : undefined,
      limit,
    });
    for (const t of page.rows) {
      const b = bucketOf(t.timeMs, sizeMs);
      let agg = buckets.get(b);
      if (!agg) buckets.set(b, (agg = new BarAgg()));
      agg.add(t);
    }
    fromId = page.nextId ?? undefined;
  } while (fromId !== undefined);
  return [...buckets].sort((a, b) => a[0] - b[0]).map(([startMs, agg]) => ({ startMs, agg }));
}

/** A bar the stream sends: a minute bar (`b`), a revised minute bar (`u`) or the day so far (`d`). */
export interface BarEvent {
  kind: "b" | "u" | "d";
  sym: number;
  bar: Bar;
}

/**
 * Builds the stream's bars from the trades as they are generated, as Alpaca's stream does: right after
 * each minute mark a minute bar (`b`) of the minute before for every symbol that traded in it, and a daily
 * bar (`d`, the UTC day so far) for every symbol whose day changed; right after each half-minute mark an
 * updated bar (`u`) for every minute already sent that a late trade has changed since. Also keeps every
 * day's bar and each symbol's latest minute bar, for REST.
 */
export class BarBuilder {
  /** Minute start → symbol → its bar; minutes are dropped once no late trade can reach them. */
  private readonly minutes = new Map<number, Map<number, BarAgg>>();
  private readonly days: Map<number, BarAgg>[];
  private readonly latest: (Bar | undefined)[];
  /** Every minute before this one has been sent. */
  private sentUpTo: number;
  /** The half-minute mark updated bars were last sent at. */
  private updatedAt: number;
  private readonly revised = new Map<number, Set<number>>();
  private readonly changedDays = new Map<number, Set<number>>();

  /**
   * @param symbols number of symbols
   * @param startMs the market's start: the first minute bar is of the minute holding it
   * @param maxLatenessMs how far in the past a trade's time may lie when it is added
   */
  constructor(
    symbols: number,
    startMs: number,
    private readonly maxLatenessMs: number,
  ) {
    this.days = Array.from({ length: symbols }, () => new Map<number, BarAgg>());
    this.latest = new Array<Bar | undefined>(symbols);
    this.sentUpTo = bucketOf(startMs, MINUTE_MS);
    this.updatedAt = bucketOf(startMs - 30_000, MINUTE_MS) + 30_000;
  }

  add(sym: number, t: BarTrade): void {
    const day = bucketOf(t.timeMs, DAY_MS);
    let dayAgg = this.days[sym].get(day);
    if (!dayAgg) this.days[sym].set(day, (dayAgg = new BarAgg()));
    dayAgg.add(t);
    mark(this.changedDays, day, sym);

    const minute = bucketOf(t.timeMs, MINUTE_MS);
    let bySym = this.minutes.get(minute);
    if (!bySym) {
      // A minute already dropped can take no more late trades (see `due`); history still has it.
      if (minute < this.sentUpTo - this.maxLatenessMs - MINUTE_MS) return;
      this.minutes.set(minute, (bySym = new Map<number, BarAgg>()));
    }
    let agg = bySym.get(sym);
    if (!agg) bySym.set(sym, (agg = new BarAgg()));
    agg.add(t);
    if (minute < this.sentUpTo) mark(this.revised, minute, sym);
  }

  /** The bars due once every trade before `completeMs` (epoch ms) has been added, in sending order. */
  due(completeMs: number): BarEvent[] {
    const out: BarEvent[] = [];
    let crossed = false;
    while (this.sentUpTo + MINUTE_MS <= completeMs) {
      const minute = this.sentUpTo;
      const bySym = this.minutes.get(minute);
      if (bySym)
        for (const [sym, agg] of [...bySym].sort((a, b) => a[0] - b[0])) {
          const bar = { startMs: minute, agg };
          this.latest[sym] = bar;
          out.push({ kind: "b", sym, bar });
        }
      this.sentUpTo += MINUTE_MS;
      crossed = true;
    }
    if (crossed) {
      for (const [day, syms] of [...this.changedDays].sort((a, b) => a[0] - b[0]))
        for (const sym of [...syms].sort((a, b) => a - b))
          out.push({ kind: "d", sym, bar: { startMs: day, agg: this.days[sym].get(day)! } });
      this.changedDays.clear();
    }
    const half = bucketOf(completeMs - 30_000, MINUTE_MS) + 30_000;
    if (half > this.updatedAt) {
      this.updatedAt = half;
      for (const [minute, syms] of [...this.revised].sort((a, b) => a[0] - b[0]))
        for (const sym of [...syms].sort((a, b) => a - b))
          out.push({ kind: "u", sym, bar: { startMs: minute, agg: this.minutes.get(minute)!.get(sym)! } });
      this.revised.clear();
    }
    for (const minute of this.minutes.keys())
      if (minute < this.sentUpTo - this.maxLatenessMs - MINUTE_MS && !this.revised.has(minute))
        this.minutes.delete(minute);
    return out;
  }

  /** The symbol's newest minute bar sent (revisions included), if any. */
  latestMinute(sym: number): Bar | undefined {
    return this.latest[sym];
  }

  /** The symbol's daily bars (UTC days, the current one so far), ascending. */
  dailyBars(sym: number): Bar[] {
    return [...this.days[sym]].sort((a, b) => a[0] - b[0]).map(([startMs, agg]) => ({ startMs, agg }));
  }
}

function mark(m: Map<number, Set<number>>, key: number, sym: number): void {
  let set = m.get(key);
  if (!set) m.set(key, (set = new Set()));
  set.add(sym);
}
