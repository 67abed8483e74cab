import type { GeneratedQuote, GeneratedTrade } from "./trade.generator";

/** A trade as the history keeps it (the tape comes from the instrument). */
export type HistoricTrade = Omit<GeneratedTrade, "kind" | "sym" | "symbol" | "tape" | "late">;

/** A quote as the history keeps it; `id` numbers a symbol's quotes 1, 2, 3, … (for paging only). */
export type HistoricQuote = Omit<GeneratedQuote, "kind" | "sym" | "symbol" | "tape">;

type Column = Float64Array | Uint32Array | Uint8Array;
type ColumnType = typeof Float64Array | typeof Uint32Array | typeof Uint8Array;

const INITIAL_CAPACITY = 64;

// Columns in typed arrays: a few dozen bytes a row instead of a few hundred for an object, which is what
// lets the feed keep an hour of a busy market in memory. Column 0 is the time (epoch ms), column 1 the
// nanoseconds past it.
class Ring {
  capacity = 0;
  head = 0;
  length = 0;
  /** Id of the oldest row kept; ids are contiguous from there. */
  firstId = 1;
  cols: Column[];

  constructor(readonly types: readonly ColumnType[]) {
    this.cols = types.map((T) => new T(0));
  }

  grow(capacity: number): void {
    this.cols = this.cols.map((old, c) => {
      const fresh = new this.types[c](capacity);
      for (let k = 0; k < this.length; k++) fresh[k] = old[(this.head + k) % this.capacity];
      return fresh;
    });
    this.head = 0;
    this.capacity = capacity;
  }
}

/** One page of a symbol's rows. */
export interface LogPage<Row> {
  rows: Row[];
  /** Id to resume from (in the page's direction), or null when nothing further matches. */
  nextId: number | null;
}

/** An instant: epoch ms and the nanoseconds past it (a Timestamp is one). */
export interface Instant {
  ms: number;
  nanos: number;
}

export interface PageQuery {
  /** First id to consider: the lowest ascending, the highest descending. @default the oldest / newest kept */
  fromId?: number;
  /** Inclusive bounds on the event time. */
  start?: Instant;
  end?: Instant;
  limit: number;
  /** Newest first. @default false */
  desc?: boolean;
}

/** Whether (aMs, aNanos) is strictly earlier than (bMs, bNanos). */
function earlier(aMs: number, aNanos: number, bMs: number, bNanos: number): boolean {
  return aMs < bMs || (aMs === bMs && aNanos < bNanos);
}

/**
 * Rows per symbol in id order, columns in typed arrays, bounded two ways: the last `maxTotal` rows
 * appended (all symbols together, so retention is a time window: maxTotal / rate seconds), and at most
 * `perSymbol` of any one symbol. Exchange codes and condition lists are kept as one-byte codes.
 */
abstract class SymbolLog<Row extends { id: number }> {
  protected readonly rings: Ring[];
  private readonly codes: string[] = [];
  private readonly codeIndex = new Map<string, number>();
  private readonly lists: (readonly string[])[] = [];
  private readonly listIndex = new Map<string, number>();
  // Append order over all symbols (symbol, id), oldest first: decides what the total bound evicts.
  // Entries whose row the per-symbol bound already dropped are skipped when they come up.
  private orderSym = new Uint32Array(0);
  private orderId = new Float64Array(0);
  private orderHead = 0;
  private orderLength = 0;

  /**
   * @param symbols number of symbols (indexes 0…symbols-1)
   * @param perSymbol rows kept per symbol at most
   * @param maxLatenessMs how far behind its neighbours a row's time may lie; lets a time-bounded scan stop early
   * @param maxTotal rows kept over all symbols at most
   */
  protected constructor(
    symbols: number,
    types: readonly ColumnType[],
    readonly perSymbol: number,
    private readonly maxLatenessMs: number,
    readonly maxTotal: number,
  ) {
    this.rings = Array.from({ length: symbols }, () => new Ring(types));
  }

  protected abstract write(cols: Column[], at: number, row: Row): void;
  protected abstract read(cols: Column[], at: number, id: number): Row;

  protected code(s: string): number {
    let k = this.codeIndex.get(s);
    if (k === undefined) {
      if (this.codes.length >= 256) throw new RangeError("more than 256 exchange codes");
      k = this.codes.push(s) - 1;
      this.codeIndex.set(s, k);
    }
    return k;
  }

  protected codeOf(k: number): string {
    return this.codes[k];
  }

  protected listCode(c: readonly string[]): number {
    const key = c.join("\u0000");
    let k = this.listIndex.get(key);
    if (k === undefined) {
      if (this.lists.length >= 256) throw new RangeError("more than 256 condition lists");
      k = this.lists.push(Object.freeze([...c])) - 1;
      this.listIndex.set(key, k);
    }
    return k;
  }

  protected listOf(k: number): readonly string[] {
    return this.lists[k];
  }

  /** Appends `sym`'s next row; its id must be exactly one past the last one appended. */
  append(sym: number, row: Row): void {
    const r = this.rings[sym];
    const expected = r.firstId + r.length;
    if (row.id !== expected)
      throw new RangeError(`history of symbol #${sym}: got id ${row.id}, expected ${expected}`);
    if (this.orderLength === this.maxTotal) this.evictOldest();
    if (r.length === this.perSymbol) this.dropFirst(r);
    if (r.length === r.capacity) r.grow(Math.min(this.perSymbol, Math.max(INITIAL_CAPACITY, r.capacity * 2)));
    this.remember(sym, row.id);
    this.write(r.cols, (r.head + r.length) % r.capacity, row);
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

  /** Rows kept over all symbols (entries dropped by the per-symbol bound included until they age out). */
  get retained(): number {
    return this.orderLength;
  }

  /** Id of the oldest row kept (newestId + 1 when there is none). */
  oldestId(sym: number): number {
    return this.rings[sym].firstId;
  }

  /** Id of the newest row (0 before the first). */
  newestId(sym: number): number {
    const r = this.rings[sym];
    return r.firstId + r.length - 1;
  }

  /** Rows kept for `sym` now. */
  size(sym: number): number {
    return this.rings[sym].length;
  }

  get(sym: number, id: number): Row | undefined {
    const r = this.rings[sym];
    const k = id - r.firstId;
    if (!Number.isInteger(k) || k < 0 || k >= r.length) return undefined;
    return this.read(r.cols, (r.head + k) % r.capacity, id);
  }

  /**
   * Up to `limit` rows of `sym` with `start` ≤ time ≤ `end`, in id order (reversed with `desc`), from
   * `fromId` on. A `fromId` no longer kept resumes at the nearest row kept (the client sees the id jump).
   */
  page(sym: number, q: PageQuery): LogPage<Row> {
    const r = this.rings[sym];
    const time = r.cols[0] as Float64Array;
    const nanos = r.cols[1] as Uint32Array;
    // Times are in id order but for rows at most maxLatenessMs behind their neighbours: a scan stops
    // once it is that far past the range.
    const stopAfter = q.end ? q.end.ms + this.maxLatenessMs : Infinity;
    const stopBefore = q.start ? q.start.ms - this.maxLatenessMs : -Infinity;
    const rows: Row[] = [];
    const step = q.desc ? -1 : 1;
    let k: number;
    if (q.desc) k = q.fromId === undefined ? r.length - 1 : Math.min(q.fromId - r.firstId, r.length - 1);
    else k = q.fromId === undefined ? 0 : Math.max(q.fromId - r.firstId, 0);
    for (; k >= 0 && k < r.length; k += step) {
      const at = (r.head + k) % r.capacity;
      const ms = time[at];
      if (q.desc ? ms < stopBefore : ms > stopAfter) break;
      if (q.start && earlier(ms, nanos[at], q.start.ms, q.start.nanos)) continue;
      if (q.end && earlier(q.end.ms, q.end.nanos, ms, nanos[at])) continue;
      if (rows.length === q.limit) return { rows, nextId: r.firstId + k };
      rows.push(this.read(r.cols, at, r.firstId + k));
    }
    return { rows, nextId: null };
  }
}

/** Every trade generated, per symbol, in id order: what REST serves for history and backfill. */
export class TradeHistory extends SymbolLog<HistoricTrade> {
  constructor(symbols: number, perSymbol: number, maxLatenessMs: number, maxTotal = Infinity) {
    super(
      symbols,
      [Float64Array, Uint32Array, Float64Array, Uint32Array, Uint8Array, Uint8Array],
      perSymbol,
      maxLatenessMs,
      maxTotal,
    );
  }

  protected write(c: Column[], at: number, t: HistoricTrade): void {
    c[0][at] = t.timeMs;
    c[1][at] = t.nanos;
    c[2][at] = t.price;
    c[3][at] = t.size;
    c[4][at] = this.code(t.exchange);
    c[5][at] = this.listCode(t.conditions);
  }

  protected read(c: Column[], at: number, id: number): HistoricTrade {
    return {
      id,
      timeMs: c[0][at],
      nanos: c[1][at],
      price: c[2][at],
      size: c[3][at],
      exchange: this.codeOf(c[4][at]),
      conditions: this.listOf(c[5][at]),
    };
  }
}

/** The quotes generated, per symbol, in order. */
export class QuoteHistory extends SymbolLog<HistoricQuote> {
  constructor(symbols: number, perSymbol: number, maxTotal = Infinity) {
    // Quote times never go back, so a time-bounded scan may stop right at the range's edge.
    super(
      symbols,
      [
        Float64Array,
        Uint32Array,
        Float64Array,
        Uint32Array,
        Float64Array,
        Uint32Array,
        Uint8Array,
        Uint8Array,
        Uint8Array,
      ],
      perSymbol,
      0,
      maxTotal,
    );
  }

  protected write(c: Column[], at: number, q: HistoricQuote): void {
    c[0][at] = q.timeMs;
    c[1][at] = q.nanos;
    c[2][at] = q.bidPrice;
    c[3][at] = q.bidSize;
    c[4][at] = q.askPrice;
    c[5][at] = q.askSize;
    c[6][at] = this.code(q.bidExchange);
    c[7][at] = this.code(q.askExchange);
    c[8][at] = this.listCode(q.conditions);
  }

  protected read(c: Column[], at: number, id: number): HistoricQuote {
    return {
      id,
      timeMs: c[0][at],
      nanos: c[1][at],
      bidPrice: c[2][at],
      bidSize: c[3][at],
      askPrice: c[4][at],
      askSize: c[5][at],
      bidExchange: this.codeOf(c[6][at]),
      askExchange: this.codeOf(c[7][at]),
      conditions: this.listOf(c[8][at]),
    };
  }
}
