import { Prng } from "./prng";
import { generateUniverse, TAPE_OF, type Instrument } from "./universe";

export interface TradeGeneratorOptions {
  /** Seeds the universe, the price paths and every random choice. @default 1 */
  seed?: number;
  /** Size of the universe (ignored when `instruments` is given). @default 50 */
  symbols?: number;
  /** The universe to trade; by default `generateUniverse(seed, symbols)`. */
  instruments?: Instrument[];
  /** Trades per WALL second, all symbols together; at `speed` s that is `rate / speed` per simulated second. @default 200 */
  rate?: number;
  /** Simulated seconds per wall second. @default 1 */
  speed?: number;
  /** Simulated time of the first trade slot, epoch ms. @default 0 */
  startMs?: number;
  /** Quotes per trade (0.5 = one quote every other trade, 2 = two per trade). @default 1 */
  quoteRatio?: number;
  /** Probability that a trade is late: its time is 60–120 simulated seconds in the past. @default 0 */
  late?: number;
}

/** One trade as generated; `sym` indexes `instruments`. */
export interface GeneratedTrade {
  kind: "t";
  sym: number;
  symbol: string;
  /** Per-symbol id: 1, 2, 3, … */
  id: number;
  /** Event time, simulated epoch ms (integer). */
  timeMs: number;
  /** Nanoseconds past `timeMs` (0–999,999): event times have nanosecond precision, as Alpaca's do. */
  nanos: number;
  price: number;
  size: number;
  exchange: string;
  conditions: readonly string[];
  tape: string;
  /** Carries a time in the past (the `late` fault). */
  late: boolean;
}

export interface GeneratedQuote {
  kind: "q";
  sym: number;
  symbol: string;
  /** Per-symbol quote number: 1, 2, 3, … (quotes carry no id on the wire; REST pages by it). */
  id: number;
  timeMs: number;
  nanos: number;
  bidExchange: string;
  bidPrice: number;
  bidSize: number;
  askExchange: string;
  askPrice: number;
  askSize: number;
  conditions: readonly string[];
  tape: string;
}

export type GeneratedEvent = GeneratedTrade | GeneratedQuote;

const REGULAR: readonly string[] = Object.freeze(["@"]);
const ODD_LOT: readonly string[] = Object.freeze(["@", "I"]);
const SWEEP: readonly string[] = Object.freeze(["@", "F"]);
const QUOTE_REGULAR: readonly string[] = Object.freeze(["R"]);
// Repeats weight the draw: Nasdaq and off-exchange (FINRA ADF, "D") prints are the most common.
const TRADE_EXCHANGES = ["Q", "Q", "N", "P", "V", "K", "Z", "D", "D", "D"];
const QUOTE_EXCHANGES = ["Q", "N", "P", "V", "K", "Z"];

// Volatility is annualised over a 24/7 year: the mock market never closes.
const YEAR_MS = 365 * 24 * 3600 * 1000;
const LATE_MIN_MS = 60_000;
const LATE_MAX_MS = 120_000;

/** The farthest in the past a late trade's time lies behind the trades around it. */
export const MAX_LATENESS_MS = LATE_MAX_MS;

function roundPrice(p: number): number {
  // Sub-dollar stocks trade in hundredths of a cent, like real ones.
  return p >= 1 ? Math.round(p * 100) / 100 : Math.max(0.0001, Math.round(p * 10000) / 10000);
}

/**
 * The pure core of the mock feed: a deterministic market, stepped by simulated time.
 *
 * Trade slots are evenly spaced in simulated time (`1000 * speed / rate` ms apart) from `startMs`; each
 * slot is one trade of a symbol drawn by popularity (a Zipf-like weight, so a few names trade most).
 * Prices follow geometric Brownian motion per symbol, advanced at each of its trades by the simulated time
 * since its previous one. Because slots and draws depend only on the slot number, the sequence is the
 * same however `next` calls cut it up: the wall-clock tick rate never changes the market.
 */
export class TradeGenerator {
  readonly instruments: readonly Instrument[];
  readonly startMs: number;
  /** Simulated ms between trade slots. */
  readonly intervalMs: number;
  private readonly market: Prng;
  private readonly faults: Prng;
  private readonly jitter: Prng;
  private readonly quoteRatio: number;
  private readonly late: number;
  private readonly cumulativeWeight: Float64Array;
  private readonly price: Float64Array;
  private readonly lastMs: Float64Array;
  private readonly sigma: Float64Array;
  private readonly halfSpread: Float64Array;
  private readonly ids: Float64Array;
  private readonly quoteIds: Float64Array;
  private slot = 0;
  private quoteCredit = 0;
  private trades = 0;
  private quotes = 0;
  private lateTrades = 0;

  constructor(opts: TradeGeneratorOptions = {}) {
    const seed = opts.seed ?? 1;
    const rate = opts.rate ?? 200;
    const speed = opts.speed ?? 1;
    if (!(rate > 0) || !Number.isFinite(rate))
      throw new RangeError(`rate must be a positive number, got ${rate}`);
    if (!(speed > 0) || !Number.isFinite(speed))
      throw new RangeError(`speed must be a positive number, got ${speed}`);
    this.instruments = opts.instruments ?? generateUniverse(seed, opts.symbols ?? 50);
    const n = this.instruments.length;
    if (n === 0) throw new RangeError("the universe must hold at least one instrument");
    this.startMs = opts.startMs ?? 0;
    this.intervalMs = (1000 * speed) / rate;
    this.quoteRatio = opts.quoteRatio ?? 1;
    this.late = opts.late ?? 0;
    // Separate streams: turning the late fault on must not change the market itself.
    this.market = new Prng(seed);
    this.faults = new Prng(seed ^ 0x1a7e1a7e);
    this.jitter = new Prng(seed ^ 0x5eed7105);

    const params = new Prng(seed ^ 0x0dd5eed);
    this.cumulativeWeight = new Float64Array(n);
    this.price = new Float64Array(n);
    this.lastMs = new Float64Array(n).fill(this.startMs);
    this.sigma = new Float64Array(n);
    this.halfSpread = new Float64Array(n);
    this.ids = new Float64Array(n);
    this.quoteIds = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      total += 1 / Math.pow(i + 1, 0.6);
      this.cumulativeWeight[i] = total;
      this.price[i] = this.instruments[i].initialPrice;
      this.sigma[i] = params.uniform(0.2, 0.8) / Math.sqrt(YEAR_MS);
      this.halfSpread[i] = params.uniform(0.5, 5) / 10_000; // 1–10 bps wide
    }
    for (let i = 0; i < n; i++) this.cumulativeWeight[i] /= total;
  }

  /** Simulated time of the next trade slot, epoch ms. */
  get nextSlotMs(): number {
    return this.startMs + this.slot * this.intervalMs;
  }

  /** How many trades, quotes and late trades have been generated so far. */
  get counts(): { trades: number; quotes: number; late: number } {
    return { trades: this.trades, quotes: this.quotes, late: this.lateTrades };
  }

  /** The id of `sym`'s last trade (0 before its first). */
  lastId(sym: number): number {
    return this.ids[sym];
  }

  /** The current (unrounded) model price of `sym`. */
  modelPrice(sym: number): number {
    return this.price[sym];
  }

  /**
   * Every trade (and its quotes) whose slot lies before `simTimeMs`, in slot order. Calling again with
   * the same or an earlier time returns nothing. `max` bounds the batch (the rest follows next call).
   */
  next(simTimeMs: number, max = Infinity): GeneratedEvent[] {
    const out: GeneratedEvent[] = [];
    let produced = 0;
    while (produced < max) {
      const slotMs = this.startMs + this.slot * this.intervalMs;
      if (slotMs >= simTimeMs) break;
      this.slot++;
      produced++;
      this.emit(slotMs, out);
    }
    return out;
  }

  private pickSymbol(): number {
    const u = this.market.next();
    const w = this.cumulativeWeight;
    let lo = 0;
    let hi = w.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (w[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private emit(slotMs: number, out: GeneratedEvent[]): void {
    const rng = this.market;
    const sym = this.pickSymbol();
    const inst = this.instruments[sym];
    const dt = slotMs - this.lastMs[sym];
    if (dt > 0) {
      const s = this.sigma[sym];
      this.price[sym] *= Math.exp(-0.5 * s * s * dt + s * Math.sqrt(dt) * rng.normal());
      this.lastMs[sym] = slotMs;
    }
    const mid = this.price[sym];

    const roll = rng.next();
    let size: number;
    let conditions: readonly string[];
    if (roll < 0.25) {
      size = rng.int(1, 99);
      conditions = ODD_LOT;
    } else if (roll < 0.9) {
      size = 100 * rng.int(1, 5);
      conditions = REGULAR;
    } else if (roll < 0.97) {
      size = 100 * rng.int(6, 50);
      conditions = REGULAR;
    } else {
      size = 100 * rng.int(1, 20);
      conditions = SWEEP;
    }
    const exchange = rng.pick(TRADE_EXCHANGES);
    const timeMs = Math.floor(slotMs);
    // Somewhere in the slot, but before the next slot and within the slot's millisecond: times keep
    // the slot order and their milliseconds do not depend on the draw.
    const lo = slotMs - timeMs;
    const hi = Math.min(1, lo + this.intervalMs);
    const nanos = Math.min(999_999, Math.floor((lo + this.jitter.next() * (hi - lo)) * 1e6));
    const late = this.faults.chance(this.late);
    const tradeTime = late ? Math.floor(slotMs - this.faults.uniform(LATE_MIN_MS, LATE_MAX_MS)) : timeMs;
    const tape = TAPE_OF[inst.exchange];
    const id = ++this.ids[sym];
    this.trades++;
    if (late) this.lateTrades++;
    out.push({
      kind: "t",
      sym,
      symbol: inst.symbol,
      id,
      timeMs: tradeTime,
      nanos,
      price: roundPrice(mid),
      size,
      exchange,
      conditions,
      tape,
      late,
    });

    this.quoteCredit += this.quoteRatio;
    while (this.quoteCredit >= 1) {
      this.quoteCredit -= 1;
      const half = Math.max(mid * this.halfSpread[sym], mid >= 1 ? 0.005 : 0.00005);
      const tick = mid >= 1 ? 100 : 10_000;
      // Floor the bid and ceil the ask, so the rounded trade price always lies inside the spread.
      const bidPrice = Math.max(1 / tick, Math.floor((mid - half) * tick) / tick);
      let askPrice = Math.ceil((mid + half) * tick) / tick;
      if (askPrice <= bidPrice) askPrice = Math.round((bidPrice + 1 / tick) * tick) / tick;
      this.quotes++;
      out.push({
        kind: "q",
        sym,
        symbol: inst.symbol,
        id: ++this.quoteIds[sym],
        timeMs,
        nanos,
        bidExchange: rng.pick(QUOTE_EXCHANGES),
        bidPrice,
        bidSize: rng.int(1, 20),
        askExchange: rng.pick(QUOTE_EXCHANGES),
        askPrice,
        askSize: rng.int(1, 20),
        conditions: QUOTE_REGULAR,
        tape,
      });
    }
  }
}
