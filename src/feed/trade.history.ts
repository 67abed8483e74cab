/** A trade as the history keeps it (the tape comes from the instrument). */
export interface HistoricTrade {
  id: number;
  timeMs: number;
  price: number;
  size: number;
  exchange: string;
  conditions: readonly string[];
}

const INITIAL_CAPACITY = 64;

// Columns in typed arrays: about 30 bytes a trade instead of a few hundred for an object, which is what
// lets the feed keep an hour of a busy market in memory.
class Ring {
  capacity = 0;
  head = 0;
  length = 0;
  /** Id of the oldest trade kept; ids are contiguous from there. */
  firstId = 1;
  time = new Float64Array(0);
  price = new Float64Array(0);
  size = new Uint32Array(0);
  exchange = new Uint8Array(0);
  conditions = new Uint8Array(0);

  grow(capacity: number): void {
    const move = <T extends Float64Array | Uint32Array | Uint8Array>(old: T, fresh: T): T => {
      for (let k = 0; k < this.length; k++) fresh[k] = old[(this.head + k) % this.capacity];
      return fresh;
    };
    this.time = move(this.time, new Float64Array(capacity));
    this.price = move(this.price, new Float64Array(capacity));
    this.size = move(this.size, new Uint32Array(capacity));
    this.exchange = move(this.exchange, new Uint8Array(capacity));
    this.conditions = move(this.conditions, new Uint8Array(capacity));
    this.head = 0;
    this.capacity = capacity;
  }
}

/** One page of a symbol's history. */
export interface HistoryPage {
  trades: HistoricTrade[];
  /** Id to resume from, or null when nothing further matches. */
  nextId: number | null;
}

/**
 * Every trade generated, per symbol, in id order: what REST serves for gap backfill. Bounded two ways:
 * the last `maxTotal` trades generated (all symbols together, so retention is a time window:
 * maxTotal / rate seconds), and at most `perSymbol` of any one symbol. A trade costs ~34 bytes, so
 * memory stays under about maxTotal × 34 bytes (×2 for growth slack) however long the feed runs.
 */
export class TradeHistory {
  private readonly rings: Ring[];
  private readonly codes: string[] = [];
  private readonly codeIndex = new Map<string, number>();
  private readonly lists: (readonly string[])[] = [];
  private readonly listIndex = new Map<string, number>();
  // Generation order over all symbols (symbol, id), oldest first: decides what the total bound evicts.
  // Entries whose trade the per-symbol bound already dropped are skipped when they come up.
  private orderSym = new Uint32Array(0);
  private orderId = new Float64Array(0);
  private orderHead = 0;
  private orderLength = 0;

  /**
   * @param symbols number of symbols (indexes 0…symbols-1)
   * @param perSymbol trades kept per symbol at most
   * @param maxLatenessMs how far behind its neighbours a trade's time may lie; lets a time-bounded scan stop early
   * @param maxTotal trades kept over all symbols at most
   */
  constructor(
    symbols: number,
    readonly perSymbol: number,
    private readonly maxLatenessMs: number,
    readonly maxTotal: number = Infinity,
  ) {
    this.rings = Array.from({ length: symbols }, () => new Ring());
  }

  private code(s: string): number {
    let k = this.codeIndex.get(s);
    if (k === undefined) {
      if (this.codes.length >= 256) throw new RangeError("more than 256 exchange codes");
      k = this.codes.push(s) - 1;
      this.codeIndex.set(s, k);
    }
    return k;
  }

  private listCode(c: readonly string[]): number {
    const key = c.join("\u0000");
    let k = this.listIndex.get(key);
    if (k === undefined) {
      if (this.lists.length >= 256) throw new RangeError("more than 256 condition lists");
      k = this.lists.push(Object.freeze([...c])) - 1;
      this.listIndex.set(key, k);
    }
    return k;
  }

  /** Appends `sym`'s next trade; its id must be exactly one past the last one appended. */
  append(sym: number, t: HistoricTrade): void {
    const r = this.rings[sym];
    const expected = r.firstId + r.length;
    if (t.id !== expected)
      throw new RangeError(`history of symbol #${sym}: got id ${t.id}, expected ${expected}`);
    if (this.orderLength === this.maxTotal) this.evictOldest();
    if (r.length === this.perSymbol) this.dropFirst(r);
    if (r.length === r.capacity) r.grow(Math.min(this.perSymbol, Math.max(INITIAL_CAPACITY, r.capacity * 2)));
    this.remember(sym, t.id);
    const at = (r.head + r.length) % r.capacity;
    r.time[at] = t.timeMs;
    r.price[at] = t.price;
    r.size[at] = t.size;
    r.exchange[at] = this.code(t.exchange);
    r.conditions[at] = this.listCode(t.conditions);
    r.length++;
  }

  private dropFirst(r: Ring): void {
    r.head = (r.head + 1) % r.capacity;
    r.length--;
    r.firstId++;
    // Give memory back when a symbol that once traded a lot has gone quiet.
    if (r.capacity > INITIAL_CAPACITY && r.length < r.capacity / 4) r.grow(Math.ceil(r.capacity / 2));
  }

  private evictOldest(): void {
    const sym = this.orderSym[this.orderHead];
    const id = this.orderId[this.orderHead];
    this.orderHead = (this.orderHead + 1) % this.orderSym.length;
    this.orderLength--;
    const r = this.rings[sym];
    if (r.length && r.firstId === id) this.dropFirst(r);
  }

  private remember(sym: number, id: number): void {
    const cap = this.orderSym.length;
    if (this.orderLength === cap) {
      const next = Math.min(this.maxTotal, Math.max(1024, cap * 2));
      const syms = new Uint32Array(next);
      const ids = new Float64Array(next);
      for (let k = 0; k < this.orderLength; k++) {
        syms[k] = this.orderSym[(this.orderHead + k) % cap];
        ids[k] = this.orderId[(this.orderHead + k) % cap];
      }
      this.orderSym = syms;
      this.orderId = ids;
      this.orderHead = 0;
    }
    const at = (this.orderHead + this.orderLength) % this.orderSym.length;
    this.orderSym[at] = sym;
    this.orderId[at] = id;
    this.orderLength++;
  }

  /** Trades kept over all symbols (entries dropped by the per-symbol bound included until they age out). */
  get retained(): number {
    return this.orderLength;
  }

  /** Id of the oldest trade kept (newestId + 1 when there is none). */
  oldestId(sym: number): number {
    return this.rings[sym].firstId;
  }

  /** Id of the newest trade (0 before the first). */
  newestId(sym: number): number {
    const r = this.rings[sym];
    return r.firstId + r.length - 1;
  }

  /** Trades kept for `sym` now. */
  size(sym: number): number {
    return this.rings[sym].length;
  }

  get(sym: number, id: number): HistoricTrade | undefined {
    const r = this.rings[sym];
    const k = id - r.firstId;
    if (!Number.isInteger(k) || k < 0 || k >= r.length) return undefined;
    return this.at(r, (r.head + k) % r.capacity, id);
  }

  private at(r: Ring, at: number, id: number): HistoricTrade {
    return {
      id,
      timeMs: r.time[at],
      price: r.price[at],
      size: r.size[at],
      exchange: this.codes[r.exchange[at]],
      conditions: this.lists[r.conditions[at]],
    };
  }

  /**
   * Up to `limit` trades of `sym` with id ≥ `fromId` and `startMs` ≤ time ≤ `endMs`, in id order. A
   * `fromId` older than what is kept resumes at the oldest trade kept (the client sees the id jump).
   */
  page(sym: number, opts: { fromId?: number; startMs?: number; endMs?: number; limit: number }): HistoryPage {
    const r = this.rings[sym];
    const startMs = opts.startMs ?? -Infinity;
    const endMs = opts.endMs ?? Infinity;
    // No trade after one this far past `endMs` can be inside the range: lateness is bounded.
    const stopMs = endMs + this.maxLatenessMs;
    const trades: HistoricTrade[] = [];
    let k = Math.max(0, (opts.fromId ?? r.firstId) - r.firstId);
    for (; k < r.length; k++) {
      const at = (r.head + k) % r.capacity;
      const t = r.time[at];
      if (t > stopMs) break;
      if (t < startMs || t > endMs) continue;
      if (trades.length === opts.limit) return { trades, nextId: r.firstId + k };
      trades.push(this.at(r, at, r.firstId + k));
    }
    return { trades, nextId: null };
  }
}
