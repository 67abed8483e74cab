import type { FaultOptions } from "./fault.options";
import { OutItem, RawFrameOut, tradeValue, type MessageSerializer } from "./message.serializer";
import { packedArray } from "./msgpack";
import { Prng } from "./prng";
import type { GeneratedEvent, GeneratedTrade } from "./trade.generator";

/** The kinds of malformed input the feed injects, so each validator path gets exercised. */
export type MalformedKind =
  /** A frame that does not decode at all (an HTML error page, a truncated array). */
  | "garbage"
  /** A frame that decodes but is not an array. */
  | "not-array"
  /** A trade message with a required field left out. */
  | "missing-field"
  /** A trade message with a price ≤ 0. */
  | "negative-price"
  /** A trade message for a symbol outside the universe (it contains a digit). */
  | "unknown-symbol"
  /** A trade message with a field of the wrong type (size as a string, time not a time). */
  | "bad-type";

export const MALFORMED_KINDS: readonly MalformedKind[] = [
  "garbage",
  "not-array",
  "missing-field",
  "negative-price",
  "unknown-symbol",
  "bad-type",
];

export { OutItem, RawFrameOut };

/** What one tick puts on the stream: `items` become one array frame per subscription; `raw` go out as is. */
export interface Batch {
  items: OutItem[];
  raw: RawFrameOut[];
}

/** What has been put on the stream; every counter counts once per broadcast, not per client. */
export interface StreamCounters {
  /** Distinct trades sent (a duplicate re-send is not counted again; a held-back trade counts when sent). */
  trades: number;
  quotes: number;
  /** Malformed frames and messages injected (never replacing a trade). */
  malformed: number;
  malformedByKind: Record<MalformedKind, number>;
  /** Extra copies of already sent trades. */
  duplicates: number;
  /** Trades sent after a later trade of their symbol (or held 2 s wall when the symbol went quiet). */
  outOfOrder: number;
  /** Stalls of the whole stream (the `slow` fault). */
  stalls: number;
}

interface Held {
  trade: GeneratedTrade;
  item: OutItem;
  sinceWallMs: number;
}

/** Longest an out-of-order trade waits for a later trade of its symbol. */
const MAX_HOLD_MS = 2000;

/**
 * Turns generated events into what goes on the wire, injecting the transport faults (malformed,
 * duplicate, out-of-order, slow). Late trades are made by the generator: their time is part of the trade
 * and the history must show it. Nothing here changes which trades exist.
 */
export class FaultInjector {
  readonly counters: StreamCounters = {
    trades: 0,
    quotes: 0,
    malformed: 0,
    malformedByKind: Object.fromEntries(MALFORMED_KINDS.map((k) => [k, 0])) as Record<MalformedKind, number>,
    duplicates: 0,
    outOfOrder: 0,
    stalls: 0,
  };
  private readonly rng: Prng;
  private readonly held = new Map<string, Held[]>();
  private heldCount = 0;
  private duplicatesDue: OutItem[] = [];
  private readonly active: boolean;

  constructor(
    private readonly faults: FaultOptions,
    seed: number,
    private readonly serializer: MessageSerializer,
  ) {
    this.rng = new Prng(seed ^ 0x7a017);
    this.active = Boolean(faults.malformed || faults.duplicate || faults.outoforder);
  }

  /** Wall ms the stream should stall now (0 = none), drawn once per tick. */
  stallMs(): number {
    if (!this.rng.chance(this.faults.slow ?? 0)) return 0;
    this.counters.stalls++;
    return Math.round(this.rng.uniform(200, 2000));
  }

  /** The batch for one tick's events. */
  process(events: readonly GeneratedEvent[], wallMs: number): Batch {
    const items: OutItem[] = [];
    const raw: RawFrameOut[] = [];
    const c = this.counters;
    const s = this.serializer;
    if (!this.active) {
      for (const e of events) {
        if (e.kind === "t") {
          items.push(s.tradeItem(e));
          c.trades++;
        } else {
          items.push(s.quoteItem(e));
          c.quotes++;
        }
      }
      return { items, raw };
    }

    if (this.duplicatesDue.length) {
      for (const d of this.duplicatesDue) items.push(d);
      c.duplicates += this.duplicatesDue.length;
      this.duplicatesDue = [];
    }
    for (const e of events) {
      if (e.kind === "q") {
        items.push(s.quoteItem(e));
        c.quotes++;
        continue;
      }
      const item = s.tradeItem(e);
      if (this.rng.chance(this.faults.outoforder ?? 0)) {
        const list = this.held.get(e.symbol);
        const h = { trade: e, item, sinceWallMs: wallMs };
        if (list) list.push(h);
        else this.held.set(e.symbol, [h]);
        this.heldCount++;
        continue;
      }
      this.send(e, item, items, raw);
      const waiting = this.held.get(e.symbol);
      if (waiting) {
        this.held.delete(e.symbol);
        this.heldCount -= waiting.length;
        for (const h of waiting) this.send(h.trade, h.item, items, raw);
        c.outOfOrder += waiting.length;
      }
    }
    if (this.heldCount) this.releaseStale(wallMs, items, raw);
    return { items, raw };
  }

  private releaseStale(wallMs: number, items: OutItem[], raw: RawFrameOut[]): void {
    for (const [symbol, list] of this.held) {
      while (list.length && wallMs - list[0].sinceWallMs >= MAX_HOLD_MS) {
        const h = list.shift()!;
        this.heldCount--;
        this.counters.outOfOrder++;
        this.send(h.trade, h.item, items, raw);
      }
      if (!list.length) this.held.delete(symbol);
    }
  }

  private send(t: GeneratedTrade, item: OutItem, items: OutItem[], raw: RawFrameOut[]): void {
    items.push(item);
    this.counters.trades++;
    if (this.rng.chance(this.faults.duplicate ?? 0)) this.duplicatesDue.push(item);
    if (this.rng.chance(this.faults.malformed ?? 0)) this.forge(t, item, items, raw);
  }

  /** A malformed frame or message imitating `t`, after it (so a consumer never loses the good one). */
  private forge(t: GeneratedTrade, item: OutItem, items: OutItem[], raw: RawFrameOut[]): void {
    const kind = this.rng.pick(MALFORMED_KINDS);
    this.counters.malformed++;
    this.counters.malformedByKind[kind]++;
    const forged = (symbol: string, value: Record<string, unknown>): OutItem =>
      new OutItem(
        "t",
        symbol,
        () => JSON.stringify(value),
        () => value,
      );
    switch (kind) {
      case "garbage": {
        if (this.rng.chance(0.5)) {
          const html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
          raw.push(new RawFrameOut(html, () => Buffer.from(html)));
        } else {
          // A frame cut off half way.
          const text = `[${item.json.slice(0, Math.max(1, item.json.length >> 1))}`;
          raw.push(
            new RawFrameOut(text, () => {
              const whole = packedArray([item.msgpack]);
              return whole.subarray(0, Math.max(2, whole.length >> 1));
            }),
          );
        }
        return;
      }
      case "not-array":
        raw.push(new RawFrameOut(item.json, () => item.msgpack));
        return;
      case "missing-field": {
        const field = this.rng.pick(["S", "i", "p", "s", "t"]);
        const value = tradeValue(t);
        delete value[field];
        items.push(forged(t.symbol, value));
        return;
      }
      case "negative-price":
        items.push(this.serializer.tradeItem(t, -t.price));
        return;
      case "unknown-symbol": {
        const symbol = `${t.symbol.replace(/\./g, "")}${this.rng.int(0, 9)}`;
        items.push(this.serializer.tradeItem({ ...t, symbol }));
        return;
      }
      case "bad-type": {
        const value = tradeValue(t);
        if (this.rng.chance(0.5)) value.s = String(t.size);
        else value.t = "yesterday";
        items.push(forged(t.symbol, value));
        return;
      }
    }
  }
}
