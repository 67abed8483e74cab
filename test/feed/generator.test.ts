import { FaultInjector, type Batch } from "../../src/feed/fault.injector";
import {
  MessageSerializer,
  TradeGenerator,
  generateUniverse,
  isQuote,
  isTrade,
  rfc3339Nano,
  type GeneratedEvent,
  type GeneratedTrade,
  type TradeMessage,
} from "../../src/feed";
import { Prng } from "../../src/feed/prng";

const START = Date.parse("2026-01-05T14:30:00.000Z");

/** Steps a generator to `endMs` in steps of `stepMs` and returns everything it produced. */
function run(gen: TradeGenerator, endMs: number, stepMs: number): GeneratedEvent[] {
  const out: GeneratedEvent[] = [];
  for (let t = gen.startMs; t < endMs;) {
    t = Math.min(endMs, t + stepMs);
    out.push(...gen.next(t));
  }
  return out;
}

describe("Prng", () => {
  test("same seed, same stream; uniform in [0,1); normals near N(0,1)", () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(Array.from({ length: 1000 }, () => b.next())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(new Prng(43).next()).not.toBe(xs[0]);
    const n = 20_000;
    const zs = Array.from({ length: n }, () => a.normal());
    const mean = zs.reduce((s, z) => s + z, 0) / n;
    const variance = zs.reduce((s, z) => s + (z - mean) ** 2, 0) / n;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
  });
});

describe("universe", () => {
  test("well-known tickers first, then unique generated ones with full reference data", () => {
    const u = generateUniverse(1, 50);
    expect(u).toHaveLength(50);
    expect(u.slice(0, 3).map((i) => i.symbol)).toEqual(["AAPL", "MSFT", "NVDA"]);
    for (const i of u) {
      expect(i.symbol).toMatch(/^[A-Z][A-Z.]{0,5}$/);
      expect(i.name.length).toBeGreaterThan(3);
      expect(["NASDAQ", "NYSE", "ARCA"]).toContain(i.exchange);
      expect(i.sector.length).toBeGreaterThan(3);
      expect(i.initialPrice).toBeGreaterThan(0);
    }
    expect(generateUniverse(1, 50)).toEqual(u);
    expect(generateUniverse(2, 60).slice(50)).not.toEqual(generateUniverse(1, 60).slice(50));
  });

  test("thousands of symbols stay unique, and a larger universe extends a smaller one", () => {
    const big = generateUniverse(9, 20_000);
    expect(new Set(big.map((i) => i.symbol)).size).toBe(20_000);
    expect(new Set(big.map((i) => i.name)).size).toBe(20_000);
    expect(generateUniverse(9, 3000)).toEqual(big.slice(0, 3000));
  });
});

describe("TradeGenerator", () => {
  test("determinism: same seed, rate and speed give the same sequence however it is stepped", () => {
    const opts = { seed: 11, rate: 500, speed: 60, startMs: START };
    const end = START + 120_000;
    const a = run(new TradeGenerator(opts), end, 7);
    const b = run(new TradeGenerator(opts), end, 5000);
    const c = run(new TradeGenerator(opts), end, 120_000);
    expect(a.length).toBeGreaterThan(1000);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    const other = run(new TradeGenerator({ ...opts, seed: 12 }), end, 1000);
    expect(other.map((e) => [e.symbol, (e as GeneratedTrade).price])).not.toEqual(
      a.map((e) => [e.symbol, (e as GeneratedTrade).price]),
    );
  });

  test("rate is per wall second: rate/speed trades per simulated second, in evenly spaced slots", () => {
    const gen = new TradeGenerator({ rate: 200, speed: 60, startMs: START });
    const trades = run(gen, START + 600_000, 1000).filter((e) => e.kind === "t");
    expect(trades).toHaveLength(2000); // 10 simulated minutes = 10 wall seconds at 200/s
    expect(gen.next(START + 600_000)).toEqual([]);
  });

  test("ids rise by one per symbol from 1; times follow the clock; quotes bracket the price", () => {
    const gen = new TradeGenerator({ seed: 3, rate: 1000, startMs: START });
    const events = run(gen, START + 20_000, 20);
    const last = new Map<string, GeneratedTrade>();
    const lastPrice = new Map<string, number>();
    const problems: string[] = []; // collected, not asserted one by one: 40,000 expects are slow
    for (const e of events) {
      if (e.timeMs > START + 20_000) problems.push(`ahead of the clock: ${JSON.stringify(e)}`);
      if (e.kind === "t") {
        const prev = last.get(e.symbol);
        if (e.id !== (prev ? prev.id + 1 : 1)) problems.push(`id gap: ${e.symbol} ${prev?.id} -> ${e.id}`);
        if (prev && (e.timeMs < prev.timeMs || (e.timeMs === prev.timeMs && e.nanos < prev.nanos)))
          problems.push(`time backwards: ${e.symbol} ${e.id}`);
        if (!Number.isInteger(e.nanos) || e.nanos < 0 || e.nanos > 999_999) problems.push(`nanos ${e.nanos}`);
        if (!(e.price > 0) || !Number.isInteger(e.size) || e.size <= 0) problems.push(`bad trade ${e.id}`);
        last.set(e.symbol, e);
        lastPrice.set(e.symbol, e.price);
      } else {
        const p = lastPrice.get(e.symbol)!;
        if (!(e.bidPrice < e.askPrice && e.bidPrice <= p && p <= e.askPrice)) {
          problems.push(`quote ${e.bidPrice}/${e.askPrice} does not bracket ${p}`);
        }
      }
    }
    expect(problems).toEqual([]);
    // Times have nanoseconds, not whole milliseconds.
    expect(new Set(events.map((e) => e.nanos)).size).toBeGreaterThan(10_000);
    expect(gen.counts.trades).toBe(20_000);
    expect(gen.counts.quotes).toBe(20_000);
    // Popular names trade more, but everyone trades.
    expect(last.get("AAPL")!.id).toBeGreaterThan(last.get(gen.instruments[49].symbol)!.id);
    expect(last.size).toBe(50);
  });

  test("prices move like a random walk, not a sawtooth: small steps, no drift to zero", () => {
    const gen = new TradeGenerator({ seed: 5, rate: 100, speed: 3600, startMs: START, symbols: 5 });
    const trades = run(gen, START + 24 * 3600_000, 60_000).filter((e): e is GeneratedTrade => e.kind === "t");
    const aapl = trades.filter((t) => t.symbol === "AAPL").map((t) => t.price);
    const steps = aapl.slice(1).map((p, k) => Math.abs(Math.log(p / aapl[k])));
    expect(Math.max(...steps)).toBeLessThan(0.05);
    expect(Math.min(...aapl)).toBeGreaterThan(228 * 0.7);
    expect(new Set(aapl).size).toBeGreaterThan(20);
  });

  test("the late fault back-dates 60–120 s without changing the market", () => {
    const base = run(new TradeGenerator({ seed: 8, rate: 1000, startMs: START }), START + 10_000, 50);
    const gen = new TradeGenerator({ seed: 8, rate: 1000, startMs: START, late: 0.05 });
    const faulty = run(gen, START + 10_000, 50);
    expect(faulty.length).toBe(base.length);
    let late = 0;
    const behind: number[] = [];
    faulty.forEach((e, k) => {
      if (e.kind === "t" && e.late) {
        late++;
        behind.push(base[k].timeMs - e.timeMs);
        faulty[k] = { ...e, timeMs: base[k].timeMs, late: false };
        // A late trade keeps the sub-millisecond part of the time it would have had.
        expect(e.nanos).toBe((base[k] as GeneratedTrade).nanos);
      }
    });
    expect(faulty).toEqual(base);
    expect(Math.min(...behind)).toBeGreaterThanOrEqual(59_999);
    expect(Math.max(...behind)).toBeLessThanOrEqual(120_000);
    expect(late).toBe(gen.counts.late);
    expect(late).toBeGreaterThan(200);
  });

  test("serialized messages are valid protocol JSON", () => {
    const gen = new TradeGenerator({ seed: 2, rate: 1000, startMs: START });
    const s = new MessageSerializer();
    for (const e of run(gen, START + 2000, 20)) {
      const m: unknown = JSON.parse(e.kind === "t" ? s.trade(e) : s.quote(e));
      if (e.kind === "t") {
        expect(isTrade(m)).toBe(true);
        const t = m as TradeMessage;
        expect(t).toEqual({
          T: "t",
          S: e.symbol,
          i: e.id,
          x: e.exchange,
          p: e.price,
          s: e.size,
          t: rfc3339Nano(e.timeMs, e.nanos),
          c: [...e.conditions],
          z: e.tape,
        });
      } else {
        expect(isQuote(m)).toBe(true);
      }
    }
  });
});

test("throughput: generator + serialization + framing produce 100,000 trades per simulated second", () => {
  // One wall second of load at rate 100k/s, stepped in 20 ms ticks as the feed does. The assertion is on
  // counts; a machine that cannot keep up shows as a slow test, not a flaky one.
  const gen = new TradeGenerator({ seed: 1, rate: 100_000, symbols: 2000, startMs: START });
  const injector = new FaultInjector({}, 1, new MessageSerializer());
  let frames = 0;
  let bytes = 0;
  let trades = 0;
  let sample: Batch | undefined;
  for (let tick = 1; tick <= 50; tick++) {
    const events = gen.next(START + tick * 20);
    const batch = injector.process(events, tick * 20);
    const frame = `[${batch.items.map((i) => i.json).join(",")}]`;
    frames++;
    bytes += frame.length;
    trades += batch.items.filter((i) => i.kind === "t").length;
    if (tick === 25) sample = batch;
  }
  expect(trades).toBe(100_000);
  expect(injector.counters.trades).toBe(100_000);
  expect(injector.counters.quotes).toBe(100_000);
  expect(frames).toBe(50);
  expect(bytes).toBeGreaterThan(100_000 * 100);
  const parsed = JSON.parse(`[${sample!.items.map((i) => i.json).join(",")}]`) as unknown[];
  expect(parsed).toHaveLength(4000);
  expect(parsed.filter(isTrade)).toHaveLength(2000);
});
