import type { RestQuote, RestTrade } from "./protocol";
import type { GeneratedQuote, GeneratedTrade } from "./trade.generator";

/**
 * Turns generated events into protocol JSON. At 100k+ trades/s JSON.stringify of an object per message
 * dominates the tick, so messages are written with template strings from pre-quoted parts, and a
 * timestamp string is reused while consecutive events share a millisecond.
 */
export class MessageSerializer {
  private readonly quoted = new Map<string, string>();
  private readonly lists = new Map<readonly string[], string>();
  private isoMs = NaN;
  private isoText = "";

  /** RFC 3339 UTC with milliseconds, e.g. 2026-01-05T14:30:00.000Z. */
  iso(ms: number): string {
    if (ms !== this.isoMs) {
      this.isoMs = ms;
      this.isoText = new Date(ms).toISOString();
    }
    return this.isoText;
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
  trade(t: GeneratedTrade, p: number = t.price): string {
    return (
      `{"T":"t","S":${this.q(t.symbol)},"i":${t.id},"x":${this.q(t.exchange)},"p":${p},"s":${t.size},` +
      `"t":"${this.iso(t.timeMs)}","c":${this.list(t.conditions)},"z":${this.q(t.tape)}}`
    );
  }

  quote(q: GeneratedQuote): string {
    return (
      `{"T":"q","S":${this.q(q.symbol)},"bx":${this.q(q.bidExchange)},"bp":${q.bidPrice},"bs":${q.bidSize},` +
      `"ax":${this.q(q.askExchange)},"ap":${q.askPrice},"as":${q.askSize},"t":"${this.iso(q.timeMs)}",` +
      `"c":${this.list(q.conditions)},"z":${this.q(q.tape)}}`
    );
  }
}

/** A trade in REST form. */
export function restTrade(
  t: Pick<GeneratedTrade, "timeMs" | "exchange" | "price" | "size" | "conditions" | "id" | "tape">,
): RestTrade {
  return {
    t: new Date(t.timeMs).toISOString(),
    x: t.exchange,
    p: t.price,
    s: t.size,
    c: [...t.conditions],
    i: t.id,
    z: t.tape,
  };
}

export function restQuote(q: GeneratedQuote): RestQuote {
  return {
    t: new Date(q.timeMs).toISOString(),
    bx: q.bidExchange,
    bp: q.bidPrice,
    bs: q.bidSize,
    ax: q.askExchange,
    ap: q.askPrice,
    as: q.askSize,
    c: [...q.conditions],
    z: q.tape,
  };
}
