import { rfc3339Micros, timestampOf } from "../feed/timestamp";
import { ALLOWED_LATENESS_MS, paneOf, PANE_MS, WATERMARK_DELAY_MS } from "../core/market";
import { isRecord } from "../core/records";

/** Why an input was quarantined. Strings, so new reasons need no migration. */
export const RejectReason = {
  /** Not JSON, not an array, not an object, an unknown message type, a field missing or of the wrong type. */
  MALFORMED: "MALFORMED",
  /** A price that is not a finite number above zero. */
  INVALID_PRICE: "INVALID_PRICE",
  /** A size that is not a whole number from 0 to 2^31-1. */
  INVALID_SIZE: "INVALID_SIZE",
  /** A quote whose bid is above its ask. */
  CROSSED_QUOTE: "CROSSED_QUOTE",
  /** A symbol outside the instrument universe. */
  UNKNOWN_SYMBOL: "UNKNOWN_SYMBOL",
  /** An event time further ahead of the ingest's clock than the skew bound. */
  CLOCK_SKEW: "CLOCK_SKEW",
  /** A trade whose 10-second pane closed for good (watermark ≥ pane end + allowed lateness). */
  LATE: "LATE",
  /**
   * A message of a type Alpaca's stream sends that tickgraph does not apply: trade corrections (`c`) and
   * cancels (`x`), which come with a trades subscription, bars, statuses, LULDs, imbalances. Kept for the
   * record.
   */
  UNSUPPORTED: "UNSUPPORTED",
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];

const MAX_INT4 = 2 ** 31 - 1;

/** Alpaca stream message types other than trades and quotes, by `T`. */
const NOT_APPLIED: Readonly<Record<string, string>> = {
  c: "a trade correction",
  x: "a trade cancel or error",
  b: "a minute bar",
  u: "an updated bar",
  d: "a daily bar",
  s: "a trading status",
  l: "a LULD band",
  i: "an order imbalance",
};

/** A trade that passed every check, in the columns the writer stores. */
export interface AcceptedTrade {
  symbol: string;
  id: number;
  /**
   * The event time in RFC 3339 with exactly six fraction digits: the feed's nanoseconds truncated to the
   * microseconds Postgres keeps, so that the stored time and `timeUs` are the same instant.
   */
  time: string;
  /** Epoch microseconds (truncated). */
  timeUs: number;
  /** Epoch milliseconds (truncated). */
  timeMs: number;
  price: number;
  size: number;
  exchange: string;
  bid: number | null;
  bidSize: number | null;
  ask: number | null;
  askSize: number | null;
}

export type Verdict =
  | { kind: "trade"; trade: AcceptedTrade }
  | { kind: "quote" }
  | { kind: "duplicate" }
  | { kind: "reject"; reason: RejectReason; detail: string };

/** What the validator knows of one symbol. */
class SymbolState {
  /** Every id up to this one has been handled (stored or quarantined as LATE). */
  contig = 0;
  /** Handled ids above `contig` (out-of-order arrivals, or ids past a gap). */
  pending: Set<number> | null = null;
  bid: number | null = null;
  bidSize: number | null = null;
  ask: number | null = null;
  askSize: number | null = null;
  /** `contig` moved since the last checkpoint. */
  dirty = false;
  /** No checkpoint knew this symbol: where its ids start is learnt from the feed. */
  fresh = true;

  seen(id: number): boolean {
    return id <= this.contig || (this.pending !== null && this.pending.has(id));
  }

  mark(id: number): void {
    if (id === this.contig + 1) {
      this.contig = id;
      this.drain();
    } else if (id > this.contig) {
      (this.pending ??= new Set()).add(id);
    }
  }

  /** Treats every id up to `id` as handled (ids the feed no longer has, or that precede our span). */
  skipTo(id: number): void {
    if (id <= this.contig) return;
    this.contig = id;
    if (this.pending) for (const p of this.pending) if (p <= id) this.pending.delete(p);
    this.drain();
  }

  private drain(): void {
    this.dirty = true;
    const p = this.pending;
    if (!p) return;
    while (p.has(this.contig + 1)) p.delete(++this.contig);
    if (p.size === 0) this.pending = null;
  }
}

export interface ValidatorOptions {
  /** The instrument universe; anything else is UNKNOWN_SYMBOL. */
  symbols: Iterable<string>;
  /** How far an event time may lie ahead of `clock()` before it is CLOCK_SKEW. @default 300000 */
  maxSkewMs?: number;
  /** The feed's now, epoch ms: the reference for the skew bound. */
  clock: () => number;
}

function reject(reason: RejectReason, detail: string): Verdict {
  return { kind: "reject", reason, detail };
}

/**
 * The one place feed data is judged. Checks shape and ranges, the symbol, the clock, duplicates and
 * lateness, and keeps the per-symbol state that needs: handled trade ids (for duplicates and gaps), the
 * latest bid/ask (which stored trades carry) and the highest accepted event time (the watermark).
 */
export class Validator {
  private readonly states = new Map<string, SymbolState>();
  private readonly maxSkewMs: number;
  /** Highest accepted trade event time, epoch ms; null before the first. */
  private maxEventMs: number | null = null;

  constructor(private readonly opts: ValidatorOptions) {
    for (const s of opts.symbols) this.states.set(s, new SymbolState());
    this.maxSkewMs = opts.maxSkewMs ?? 300_000;
  }

  /** Highest accepted event time − 2 s; null before any trade. */
  get watermarkMs(): number | null {
    return this.maxEventMs === null ? null : this.maxEventMs - WATERMARK_DELAY_MS;
  }

  get latestEventMs(): number | null {
    return this.maxEventMs;
  }

  get symbols(): string[] {
    return [...this.states.keys()];
  }

  /** Resumes from a checkpoint: handled ids per symbol and the watermark then. */
  restore(lastIds: Record<string, number>, watermarkMs: number | null): void {
    for (const [symbol, id] of Object.entries(lastIds)) {
      const st = this.states.get(symbol);
      if (!st || !Number.isSafeInteger(id)) continue;
      st.contig = id;
      st.fresh = false;
    }
    if (watermarkMs !== null) this.maxEventMs = watermarkMs + WATERMARK_DELAY_MS;
  }

  /** Judges one message (a parsed element of a stream frame, or a REST trade with T and S added). */
  check(m: unknown): Verdict {
    if (!isRecord(m)) return reject(RejectReason.MALFORMED, "not an object");
    if (m.T === "t") return this.trade(m);
    if (m.T === "q") return this.quote(m);
    if (typeof m.T === "string" && m.T in NOT_APPLIED)
      return reject(
        RejectReason.UNSUPPORTED,
        `${NOT_APPLIED[m.T]} (T="${m.T}"): tickgraph does not apply it`,
      );
    return reject(RejectReason.MALFORMED, `unknown message type T=${JSON.stringify(m.T)}`);
  }

  private trade(m: Record<string, unknown>): Verdict {
    const { S, i, p, s, t, x, c, z } = m;
    if (typeof S !== "string" || S === "")
      return reject(RejectReason.MALFORMED, "S (symbol) missing or not a string");
    if (typeof i !== "number" || !Number.isSafeInteger(i) || i < 1)
      return reject(RejectReason.MALFORMED, "i (id) missing or not a positive integer");
    if (typeof p !== "number") return reject(RejectReason.MALFORMED, "p (price) missing or not a number");
    if (!Number.isFinite(p) || p <= 0)
      return reject(RejectReason.INVALID_PRICE, `p (price) ${p} is not above 0`);
    if (typeof s !== "number") return reject(RejectReason.MALFORMED, "s (size) missing or not a number");
    if (!Number.isInteger(s) || s < 0 || s > MAX_INT4)
      return reject(RejectReason.INVALID_SIZE, `s (size) ${s} is not a whole number from 0 to ${MAX_INT4}`);
    // An RFC 3339 string (JSON) or the msgpack timestamp extension, up to nanoseconds.
    const ts = timestampOf(t);
    if (ts === undefined) return reject(RejectReason.MALFORMED, "t (time) not an RFC 3339 time");
    const timeMs = ts.ms;
    if (typeof x !== "string") return reject(RejectReason.MALFORMED, "x (exchange) missing or not a string");
    if (!Array.isArray(c) || !c.every((v) => typeof v === "string"))
      return reject(RejectReason.MALFORMED, "c (conditions) not an array of strings");
    if (typeof z !== "string") return reject(RejectReason.MALFORMED, "z (tape) missing or not a string");
    const st = this.states.get(S);
    if (!st) return reject(RejectReason.UNKNOWN_SYMBOL, `symbol ${S} is not in the instrument universe`);
    if (st.seen(i)) return { kind: "duplicate" };
    const skew = this.skew(timeMs);
    if (skew) return skew;
    const wm = this.watermarkMs;
    if (wm !== null && paneOf(timeMs) + PANE_MS + ALLOWED_LATENESS_MS <= wm) {
      // Handled for good: a re-send is a duplicate and a backfill does not fetch it again.
      st.mark(i);
      return reject(
        RejectReason.LATE,
        `${ts.toJSON()} is in the pane from ${new Date(paneOf(timeMs)).toISOString()}, final since watermark ${new Date(wm).toISOString()}`,
      );
    }
    st.mark(i);
    if (this.maxEventMs === null || timeMs > this.maxEventMs) this.maxEventMs = timeMs;
    return {
      kind: "trade",
      trade: {
        symbol: S,
        id: i,
        time: rfc3339Micros(ts),
        timeUs: ts.micros,
        timeMs,
        price: p,
        size: s,
        exchange: x,
        bid: st.bid,
        bidSize: st.bidSize,
        ask: st.ask,
        askSize: st.askSize,
      },
    };
  }

  private quote(m: Record<string, unknown>): Verdict {
    const { S, bp, ap, bs, t, bx, ax } = m;
    const as = m.as;
    if (typeof S !== "string" || S === "")
      return reject(RejectReason.MALFORMED, "S (symbol) missing or not a string");
    if (typeof bp !== "number" || typeof ap !== "number")
      return reject(RejectReason.MALFORMED, "bp/ap (bid/ask price) missing or not numbers");
    if (!Number.isFinite(bp) || bp <= 0 || !Number.isFinite(ap) || ap <= 0)
      return reject(RejectReason.INVALID_PRICE, `bp/ap (bid/ask price) ${bp}/${ap} not both above 0`);
    if (typeof bs !== "number" || typeof as !== "number")
      return reject(RejectReason.MALFORMED, "bs/as (bid/ask size) missing or not numbers");
    if (![bs, as].every((v) => Number.isInteger(v) && v >= 0 && v <= MAX_INT4))
      return reject(
        RejectReason.INVALID_SIZE,
        `bs/as (bid/ask size) ${bs}/${as} not whole numbers from 0 to ${MAX_INT4}`,
      );
    if (bp > ap) return reject(RejectReason.CROSSED_QUOTE, `bid ${bp} is above ask ${ap}`);
    const ts = timestampOf(t);
    if (ts === undefined) return reject(RejectReason.MALFORMED, "t (time) not an RFC 3339 time");
    const timeMs = ts.ms;
    if (typeof bx !== "string" || typeof ax !== "string")
      return reject(RejectReason.MALFORMED, "bx/ax (exchanges) missing or not strings");
    const st = this.states.get(S);
    if (!st) return reject(RejectReason.UNKNOWN_SYMBOL, `symbol ${S} is not in the instrument universe`);
    const skew = this.skew(timeMs);
    if (skew) return skew;
    st.bid = bp;
    st.bidSize = bs;
    st.ask = ap;
    st.askSize = as;
    return { kind: "quote" };
  }

  private skew(timeMs: number): Verdict | undefined {
    // Only the future is bounded: a past time is either LATE or a legitimate backfill after an outage.
    const now = Math.max(this.opts.clock(), this.maxEventMs ?? -Infinity);
    const ahead = timeMs - now;
    if (ahead <= this.maxSkewMs) return undefined;
    return reject(
      RejectReason.CLOCK_SKEW,
      `${new Date(timeMs).toISOString()} is ${ahead} ms ahead of the ingest clock (bound ${this.maxSkewMs} ms)`,
    );
  }

  /** Whether every id of `symbol` up to `id` has been handled. */
  handledUpTo(symbol: string): number {
    return this.states.get(symbol)?.contig ?? 0;
  }

  isFresh(symbol: string): boolean {
    return this.states.get(symbol)?.fresh ?? false;
  }

  /** Ids of `symbol` above `handledUpTo` handled already (they need no backfill). */
  isHandled(symbol: string, id: number): boolean {
    return this.states.get(symbol)?.seen(id) ?? false;
  }

  skipTo(symbol: string, id: number): void {
    const st = this.states.get(symbol);
    if (!st) return;
    st.skipTo(id);
    st.fresh = false;
  }

  /** Marks `symbol` as known to the checkpoint (its start has been settled). */
  settle(symbol: string): void {
    const st = this.states.get(symbol);
    if (st && st.fresh) {
      st.fresh = false;
      st.dirty = true;
    }
  }

  /** Handled-through ids of the symbols that moved since the last call, for the checkpoint. */
  takeCheckpoint(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [symbol, st] of this.states) {
      if (!st.dirty) continue;
      out[symbol] = st.contig;
      st.dirty = false;
    }
    return out;
  }

  /** Symbols with a hole below ids already handled: candidates for a REST backfill. */
  gaps(): { symbol: string; after: number; before: number }[] {
    const out: { symbol: string; after: number; before: number }[] = [];
    for (const [symbol, st] of this.states) {
      if (!st.pending) continue;
      let min = Infinity;
      for (const p of st.pending) if (p < min) min = p;
      out.push({ symbol, after: st.contig, before: min });
    }
    return out;
  }
}
