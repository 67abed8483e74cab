import { FaultInjector, MALFORMED_KINDS } from "../../src/feed/fault.injector";
import { checkFaults, formatFaults, parseFaults } from "../../src/feed/fault.options";
import {
  MessageSerializer,
  TradeGenerator,
  decodeServerFrame,
  parseServerFrame,
  type TradeMessage,
} from "../../src/feed";
import { unpack } from "../../src/feed/msgpack";
import { TradeHistory } from "../../src/feed/trade.history";
import type { OutItem, RawFrameOut } from "../../src/feed/fault.injector";

describe("parseFaults", () => {
  test("reads every knob", () => {
    expect(
      parseFaults("malformed=0.01,duplicate=0.01,outoforder=0.01,late=0.005,disconnect=30s,slow=0.1"),
    ).toEqual({
      malformed: 0.01,
      duplicate: 0.01,
      outoforder: 0.01,
      late: 0.005,
      disconnectMs: 30_000,
      slow: 0.1,
    });
    expect(parseFaults(" disconnect = 500ms , late=1 ")).toEqual({ disconnectMs: 500, late: 1 });
    expect(parseFaults("disconnect=2m")).toEqual({ disconnectMs: 120_000 });
    expect(parseFaults("disconnect=15")).toEqual({ disconnectMs: 15_000 });
    expect(parseFaults("")).toEqual({});
    expect(parseFaults("none")).toEqual({});
  });

  test.each([
    ["bogus=0.1", /unknown fault "bogus" in "bogus=0.1"/],
    ["malformed=2", /fault "malformed=2": the probability must be a number from 0 to 1/],
    ["late=abc", /fault "late=abc"/],
    ["late=", /fault "late="/],
    ["duplicate", /fault "duplicate" has no value/],
    ["disconnect=soon", /fault "disconnect=soon": use a positive duration/],
    ["disconnect=0s", /fault "disconnect=0s"/],
    ["late=0.1,late=0.2", /fault "late" is given twice/],
  ])("%s is refused with a message naming the bad part", (spec, message) => {
    expect(() => parseFaults(spec)).toThrow(message);
  });

  test("object options are checked too, and format back", () => {
    expect(() => checkFaults({ duplicate: -1 })).toThrow(/faults.duplicate must be from 0 to 1/);
    expect(formatFaults(parseFaults("late=0.5,disconnect=1s"))).toBe("late=0.5,disconnect=1000ms");
    expect(formatFaults({})).toBe("none");
  });
});

describe("FaultInjector", () => {
  test("faults are added around intact trades; counters say exactly what was injected", () => {
    const gen = new TradeGenerator({ seed: 4, rate: 1000, startMs: 0, quoteRatio: 0 });
    const inj = new FaultInjector(
      { malformed: 0.05, duplicate: 0.05, outoforder: 0.05 },
      4,
      new MessageSerializer(),
    );
    const history = new TradeHistory(gen.instruments.length, 100_000, 120_000);
    const rawFrames: RawFrameOut[] = [];
    const out: OutItem[] = [];
    for (let tick = 1; tick <= 500; tick++) {
      const events = gen.next(tick * 20);
      for (const e of events) if (e.kind === "t") history.append(e.sym, e);
      const b = inj.process(events, tick * 20);
      rawFrames.push(...b.raw);
      out.push(...b.items);
    }
    // A quiet tick long after releases whatever is still held back.
    const tail = inj.process([], 500 * 20 + 5000);
    out.push(...tail.items);
    rawFrames.push(...tail.raw);
    const raw = rawFrames.map((r) => r.text);
    const items = out.map((i) => i.json);
    // msgpack carries the same messages; a malformed frame is malformed in msgpack too.
    for (const i of out) expect(JSON.parse(JSON.stringify(unpack(i.msgpack)))).toEqual(JSON.parse(i.json));
    for (const r of rawFrames) expect(decodeServerFrame({ binary: true, data: r.msgpack }).ok).toBe(false);

    const c = inj.counters;
    const parsed = parseServerFrame(`[${items.join(",")}]`);
    if (!parsed.ok) throw new Error(parsed.reason);
    const good = parsed.items.flatMap((i) => (i.ok ? [i.message as TradeMessage] : []));
    const badItems = parsed.items.filter((i) => !i.ok).length;
    const known = new Set(gen.instruments.map((i) => i.symbol));
    const unknown = good.filter((t) => !known.has(t.S));
    const rawBad = raw.filter((r) => !parseServerFrame(r).ok).length;
    expect(rawBad).toBe(raw.length);
    // Every malformed injection is visible as exactly one bad frame, bad item or unknown symbol.
    expect(rawBad + badItems + unknown.length).toBe(c.malformed);
    expect(MALFORMED_KINDS.every((k) => c.malformedByKind[k] > 0)).toBe(true);

    const real = good.filter((t) => known.has(t.S));
    const seen = new Map<string, TradeMessage>();
    let duplicates = 0;
    let outOfOrder = 0;
    const maxId = new Map<string, number>();
    for (const t of real) {
      const k = `${t.S}#${t.i}`;
      if (seen.has(k)) {
        duplicates++;
        expect(t).toEqual(seen.get(k));
        continue;
      }
      seen.set(k, t);
      if (t.i < (maxId.get(t.S) ?? 0)) outOfOrder++;
      maxId.set(t.S, Math.max(t.i, maxId.get(t.S) ?? 0));
    }
    expect(seen.size).toBe(c.trades);
    expect(c.trades).toBe(gen.counts.trades); // nothing lost, nothing invented
    expect(duplicates).toBe(c.duplicates);
    expect(c.duplicates).toBeGreaterThan(0);
    expect(outOfOrder).toBeGreaterThan(0);
    expect(outOfOrder).toBeLessThanOrEqual(c.outOfOrder);
    // Each distinct trade sent is the history's trade with that id.
    for (const t of seen.values()) {
      const h = history.get(
        gen.instruments.findIndex((i) => i.symbol === t.S),
        t.i,
      )!;
      expect([h.price, h.size, h.timeMs]).toEqual([t.p, t.s, Date.parse(t.t)]);
      expect(t.t).toBe(new MessageSerializer().time(h.timeMs, h.nanos));
    }
  });

  test("slow stalls are drawn per tick", () => {
    const inj = new FaultInjector({ slow: 0.5 }, 1, new MessageSerializer());
    const stalls = Array.from({ length: 200 }, () => inj.stallMs());
    expect(stalls.filter((s) => s > 0).length).toBe(inj.counters.stalls);
    expect(inj.counters.stalls).toBeGreaterThan(50);
    expect(Math.min(...stalls.filter((s) => s > 0))).toBeGreaterThanOrEqual(200);
    expect(Math.max(...stalls)).toBeLessThanOrEqual(2000);
  });
});

describe("TradeHistory", () => {
  const trade = (id: number, timeMs: number) => ({
    id,
    timeMs,
    nanos: id % 1000,
    price: 10 + id / 100,
    size: 100,
    exchange: "V",
    conditions: ["@"],
  });

  test("keeps the last perSymbol trades in id order and pages through them", () => {
    const h = new TradeHistory(2, 100, 120_000);
    for (let id = 1; id <= 250; id++) h.append(0, trade(id, 1000 * id));
    expect(h.size(0)).toBe(100);
    expect(h.oldestId(0)).toBe(151);
    expect(h.newestId(0)).toBe(250);
    expect(h.get(0, 150)).toBeUndefined();
    expect(h.get(0, 200)).toEqual(trade(200, 200_000));
    expect(h.newestId(1)).toBe(0);
    expect(h.page(1, { limit: 10 })).toEqual({ rows: [], nextId: null });

    const ids: number[] = [];
    let fromId: number | undefined;
    do {
      const p = h.page(0, { fromId, limit: 7 });
      ids.push(...p.rows.map((t) => t.id));
      fromId = p.nextId ?? undefined;
    } while (fromId !== undefined);
    expect(ids).toEqual(Array.from({ length: 100 }, (_, k) => 151 + k));
    // A token from before eviction resumes at the oldest kept.
    expect(h.page(0, { fromId: 3, limit: 1 }).rows[0].id).toBe(151);
    // Newest first, resuming downwards.
    const desc = h.page(0, { desc: true, limit: 3 });
    expect(desc.rows.map((t) => t.id)).toEqual([250, 249, 248]);
    expect(h.page(0, { desc: true, fromId: desc.nextId!, limit: 2 }).rows.map((t) => t.id)).toEqual([
      247, 246,
    ]);
    expect(h.page(0, { fromId: 251, limit: 5 }).rows).toEqual([]);
    expect(() => h.append(0, trade(999, 0))).toThrow(/expected 251/);
  });

  test("the total bound keeps the last maxTotal trades over all symbols", () => {
    const h = new TradeHistory(3, 50, 120_000, 100);
    const ids = [0, 0, 0];
    const order: [number, number][] = [];
    for (let n = 0; n < 1000; n++) {
      const sym = n % 7 === 0 ? 2 : n % 2; // symbol 2 trades rarely
      const id = ++ids[sym];
      h.append(sym, trade(id, n));
      order.push([sym, id]);
    }
    const kept = (sym: number) => h.page(sym, { limit: 10_000 }).rows.map((t) => t.id);
    const lastHundred = order.slice(-100);
    for (const sym of [0, 1, 2]) {
      const expected = lastHundred.filter(([s]) => s === sym).map(([, id]) => id);
      // Symbols 0 and 1 are also held to 50 each by the per-symbol bound.
      expect(kept(sym)).toEqual(expected.slice(-50));
    }
    expect(h.retained).toBeLessThanOrEqual(100);

    // A busy symbol that goes quiet is drained by the total bound (and its buffer shrinks) intact.
    const g = new TradeHistory(2, 10_000, 120_000, 300);
    for (let id = 1; id <= 1000; id++) g.append(0, trade(id, id));
    for (let id = 1; id <= 290; id++) g.append(1, trade(id, id));
    expect(g.page(0, { limit: 100 }).rows.map((t) => t.id)).toEqual([
      991, 992, 993, 994, 995, 996, 997, 998, 999, 1000,
    ]);
    expect(g.get(0, 995)).toEqual(trade(995, 995));
    for (let id = 291; id <= 600; id++) g.append(1, trade(id, id));
    expect(g.size(0)).toBe(0);
    expect(g.oldestId(0)).toBe(1001);
    expect(g.page(1, { limit: 1000 }).rows).toHaveLength(300);
  });

  test("time range is inclusive at both ends and finds late trades (up to the lateness bound)", () => {
    const h = new TradeHistory(1, 1000, 120_000);
    for (let id = 1; id <= 300; id++) h.append(0, trade(id, id === 200 ? 100_000 : id * 1000));
    const range = { start: { ms: 100_000, nanos: 0 }, end: { ms: 110_000, nanos: 110 } };
    const p = h.page(0, { ...range, limit: 100 });
    expect(p.rows.map((t) => t.id)).toEqual([100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 200]);
    const first = h.page(0, { ...range, limit: 11 });
    expect(first.nextId).toBe(200);
    // Exact to the nanosecond: trade 110 is at 110,000 ms + 110 ns.
    const shorter = h.page(0, { ...range, end: { ms: 110_000, nanos: 109 }, limit: 100 });
    expect(shorter.rows.map((t) => t.id)).not.toContain(110);
    expect(shorter.rows.map((t) => t.id)).toContain(109);
  });
});
