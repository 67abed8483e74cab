import type { BarAgg } from "./bars";
import { pack } from "./msgpack";
import type { DataType, RestBar, RestQuote, RestTrade } from "./protocol";
import { rfc3339Nano, Timestamp } from "./timestamp";
import type { HistoricQuote, HistoricTrade } from "./trade.history";
import type { GeneratedQuote, GeneratedTrade } from "./trade.generator";

/**
 * One data message on its way out, in both encodings, each made the first time a connection of that format
 * wants it and then kept: a message is encoded once per format however many connections it goes to, and
 * not at all in a format no subscriber of it speaks.
 */
export class OutItem {
  private text: string | undefined;
  private packed: Buffer | undefined;

  /**
   * @param kind the message type, which decides the channel
   * @param symbol what subscriptions are matched against (for a forged message, the symbol it imitates)
   * @param toJson the message as JSON text
   * @param value the message as a value for msgpack (event times as Timestamps)
   */
  constructor(
    readonly kind: DataType,
    readonly symbol: string,
    private readonly toJson: () => string,
    private readonly value: () => unknown,
  ) {}

  get json(): string {
    return (this.text ??= this.toJson());
  }

  get msgpack(): Buffer {
    return (this.packed ??= pack(this.value()));
  }
}

/** A whole frame sent as is (the malformed ones the fault injector makes), in both encodings. */
export class RawFrameOut {
  private bytes: Buffer | undefined;

  constructor(
    readonly text: string,
    private readonly binary: () => Buffer,
  ) {}

  get msgpack(): Buffer {
    return (this.bytes ??= this.binary());
  }
}

type TradeFields = Pick<
  GeneratedTrade,
  "symbol" | "id" | "exchange" | "price" | "size" | "timeMs" | "nanos" | "conditions" | "tape"
>;

/**
 * Turns generated events into protocol messages. At 100k+ trades/s JSON.stringify of an object per message
 * dominates the tick, so JSON is written with template strings from pre-quoted parts, and a timestamp's
 * millisecond part is reused while consecutive events share a millisecond.
 */
export class MessageSerializer {
  private readonly quoted = new Map<string, string>();
  private readonly lists = new Map<readonly string[], string>();
  private isoMs = NaN;
  private isoText = "";

  /** RFC 3339 UTC with nanoseconds, trailing zeros dropped, e.g. 2026-01-05T14:30:00.0012345Z. */
  time(ms: number, nanos: number): string {
    if (ms !== this.isoMs) {
      this.isoMs = ms;
      this.isoText = new Date(ms).toISOString();
    }
    return rfc3339Nano(ms, nanos, this.isoText);
  }

  private q(s: string): string {
    let v = this.quoted.get(s);
    if (v === undefined) {
      v = JSON.stringify(s);
      if (this.quoted.size < 100_000) this.quoted.set(s, v);
    }
    return v;
  }

  private list(c: readonly string[]): string {
    let v = this.lists.get(c);
    if (v === undefined) {
      v = JSON.stringify(c);
      if (this.lists.size < 1000) this.lists.set(c, v);
    }
    return v;
  }

  /** The stream message `{"T":"t",…}`; `p` overrides the price (used to forge bad ones). */
  trade(t: TradeFields, p: number = t.price): string {
    return (
      `{"T":"t","S":${this.q(t.symbol)},"i":${t.id},"x":${this.q(t.exchange)},"p":${p},"s":${t.size},` +
      `"t":"${this.time(t.timeMs, t.nanos)}","c":${this.list(t.conditions)},"z":${this.q(t.tape)}}`
    );
  }

  quote(q: GeneratedQuote): string {
    return (
      `{"T":"q","S":${this.q(q.symbol)},"bx":${this.q(q.bidExchange)},"bp":${q.bidPrice},"bs":${q.bidSize},` +
      `"ax":${this.q(q.askExchange)},"ap":${q.askPrice},"as":${q.askSize},"t":"${this.time(q.timeMs, q.nanos)}",` +
      `"c":${this.list(q.conditions)},"z":${this.q(q.tape)}}`
    );
  }

  tradeItem(t: TradeFields, p: number = t.price): OutItem {
    return new OutItem(
      "t",
      t.symbol,
      () => this.trade(t, p),
      () => tradeValue(t, p),
    );
  }

  quoteItem(q: GeneratedQuote): OutItem {
    return new OutItem(
      "q",
      q.symbol,
      () => this.quote(q),
      () => quoteValue(q),
    );
  }

  barItem(kind: "b" | "u" | "d", symbol: string, startMs: number, agg: BarAgg): OutItem {
    // Bars are few (one per symbol per minute): the generic path is fast enough. Taken now: the aggregate
    // goes on changing.
    const value = barValue(kind, symbol, startMs, agg);
    return new OutItem(
      kind,
      symbol,
      () => JSON.stringify(value),
      () => value,
    );
  }
}

/** A trade as a value, field order as in JSON; its JSON.stringify is `MessageSerializer.trade`'s text. */
export function tradeValue(t: TradeFields, p: number = t.price): Record<string, unknown> {
  return {
    T: "t",
    S: t.symbol,
    i: t.id,
    x: t.exchange,
    p,
    s: t.size,
    t: new Timestamp(t.timeMs, t.nanos),
    c: t.conditions,
    z: t.tape,
  };
}

export function quoteValue(q: GeneratedQuote): Record<string, unknown> {
  return {
    T: "q",
    S: q.symbol,
    bx: q.bidExchange,
    bp: q.bidPrice,
    bs: q.bidSize,
    ax: q.askExchange,
    ap: q.askPrice,
    as: q.askSize,
    t: new Timestamp(q.timeMs, q.nanos),
    c: q.conditions,
    z: q.tape,
  };
}

export function barValue(
  kind: "b" | "u" | "d",
  symbol: string,
  startMs: number,
  agg: BarAgg,
): Record<string, unknown> {
  return { T: kind, S: symbol, ...restBarFields(agg), t: new Timestamp(startMs, 0), n: agg.n, vw: agg.vw };
}

function restBarFields(agg: BarAgg): { o: number; h: number; l: number; c: number; v: number } {
  return { o: agg.o, h: agg.h, l: agg.l, c: agg.c, v: agg.v };
}

/** A trade in REST form. */
export function restTrade(t: HistoricTrade, tape: string): RestTrade {
  return {
    t: rfc3339Nano(t.timeMs, t.nanos),
    x: t.exchange,
    p: t.price,
    s: t.size,
    c: [...t.conditions],
    i: t.id,
    z: tape,
  };
}

export function restQuote(q: Omit<HistoricQuote, "id">, tape: string): RestQuote {
  return {
    t: rfc3339Nano(q.timeMs, q.nanos),
    bx: q.bidExchange,
    bp: q.bidPrice,
    bs: q.bidSize,
    ax: q.askExchange,
    ap: q.askPrice,
    as: q.askSize,
    c: [...q.conditions],
    z: tape,
  };
}

export function restBar(startMs: number, agg: BarAgg): RestBar {
  return { t: rfc3339Nano(startMs), ...restBarFields(agg), n: agg.n, vw: agg.vw };
}
