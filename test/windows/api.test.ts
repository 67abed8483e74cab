import { Client } from "pg";
import { Role } from "../../src/policy/principal";
import { rebuildWindows } from "../../src/windows/rebuild";
import { grantEntitlements } from "../support/governance";
import { startPlatformAtMarketTime, type ClockedPlatform } from "../support/market-clock";

let t: ClockedPlatform;
let token: string;
const T0 = Date.parse("2026-01-05T14:30:00Z");
// The market's now, 31 minutes and 5 seconds in: a caller without REALTIME (DELAY_SECONDS 900) sees
// the market up to 16:05 in, in the middle of the data.
const NOW = T0 + 31 * 60_000 + 5_000;
const CUTOFF = NOW - 900_000;

beforeAll(async () => {
  t = await startPlatformAtMarketTime(new Date(NOW));
  const c = new Client({ connectionString: t.databaseUrl });
  await c.connect();
  // Five symbols over 30 minutes, one trade per second each, with distinct trends; UP and DOWN also
  // traded the previous day, so they have a previous session close.
  await c.query(`INSERT INTO instruments (symbol, name, exchange, sector)
                 SELECT s, s, 'NYSE', 'Tech' FROM unnest(ARRAY['UP','DOWN','FLAT','TIE1','TIE2']) s`);
  await c.query(
    `INSERT INTO quotes (symbol, event_time, seq, price, size)
     SELECT s.symbol, $1::timestamptz + n * interval '1 second', n, s.base + s.slope * n, 10 + n % 7
     FROM (VALUES ('UP', 100.0, 0.01), ('DOWN', 200.0, -0.02), ('FLAT', 150.0, 0.0), ('TIE1', 120.0, 0.0), ('TIE2', 120.0, 0.0))
          AS s(symbol, base, slope)
     CROSS JOIN generate_series(0, 1799) n`,
    [new Date(T0)],
  );
  await c.query(
    `INSERT INTO quotes (symbol, event_time, seq, price, size)
     VALUES ('UP', $1, 100000, 90, 5), ('DOWN', $1, 100000, 250, 5)`,
    [new Date(T0 - 86_400_000)],
  );
  // Ten minutes before the others, three symbols whose order by VWAP is not their order by mean: VA
  // trades 90 in lots of 1 and 80 in lots of 100 (mean 85, VWAP about 80.1); VB and VC trade 82 flat.
  await c.query(`INSERT INTO instruments (symbol, name, exchange, sector)
                 SELECT s, s, 'NYSE', 'Tech' FROM unnest(ARRAY['VA','VB','VC']) s`);
  await c.query(
    `INSERT INTO quotes (symbol, event_time, seq, price, size)
     SELECT s, $1::timestamptz + n * interval '1 second', n,
            CASE WHEN s = 'VA' THEN (CASE WHEN n % 2 = 0 THEN 90 ELSE 80 END) ELSE 82 END,
            CASE WHEN s = 'VA' THEN (CASE WHEN n % 2 = 0 THEN 1 ELSE 100 END) ELSE 10 END
     FROM unnest(ARRAY['VA','VB','VC']) s CROSS JOIN generate_series(0, 599) n`,
    [new Date(T0 - 1_200_000)],
  );
  await c.query(`INSERT INTO window_progress (id, emitted_until, final_until) VALUES (1, $1, $1)`, [
    new Date(T0 + 3_600_000),
  ]);
  await c.end();
  await rebuildWindows(t.platform.db.dataSource, new Date(T0 - 86_400_000), new Date(T0 + 1_800_000));
  await grantEntitlements(t, "alice");
  token = await t.token("alice");
});
afterAll(() => t.close());

const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, { token, variables });

test("windowAggregates pages through one symbol's windows by cursor, newest first", async () => {
  const seen: string[] = [];
  let after: string | null = null;
  for (;;) {
    const { body } = await gql(
      `query($after: String) { windowAggregates(size: ONE_MINUTE, symbols: ["UP"], first: 50, after: $after) {
         nodes { symbol windowStart windowEnd tickCount open close final revision delayed }
         pageInfo { hasNextPage endCursor } } }`,
      { after },
    );
    expect(body.errors).toBeUndefined();
    const conn = body.data.windowAggregates;
    seen.push(...conn.nodes.map((n: { windowEnd: string }) => n.windowEnd));
    if (!conn.pageInfo.hasNextPage) break;
    after = conn.pageInfo.endCursor;
  }
  // 30 minutes of trades: ends from T0+10s to T0+30min+50s, every 10 s, plus the previous day's 6.
  expect(seen.length).toBe(185 + 6);
  expect(seen).toEqual([...seen].sort().reverse());
  expect(new Set(seen).size).toBe(seen.length);
});

test("a windowAggregates page reads only what its selection needs, and serves the same values as the whole row", async () => {
  const page = async (selection: string, fragments = "") => {
    const { body } = await gql(
      `{ windowAggregates(size: FIVE_MINUTES, symbols: ["UP", "DOWN"], first: 40) { ${selection} } } ${fragments}`,
    );
    expect(body.errors).toBeUndefined();
    return body.data.windowAggregates;
  };
  const ALL = `symbol size windowStart windowEnd open high low close mean vwap volume tickCount revision
    final partial coveredFrom delayed cursor`;
  const rows = (await page(`nodes { ${ALL} }`)).nodes as Record<string, unknown>[];
  expect(rows).toHaveLength(40);
  const pick = (...keys: string[]) => rows.map((r) => Object.fromEntries(keys.map((k) => [k, r[k]])));
  type Node = Record<string, unknown>;
  expect((await page(`nodes { windowEnd open close volume }`)).nodes).toEqual(
    pick("windowEnd", "open", "close", "volume"),
  );
  expect((await page(`nodes { final partial coveredFrom }`)).nodes).toEqual(
    pick("final", "partial", "coveredFrom"),
  );
  const viaEdges = await page(
    `edges { node { ...W } } pageInfo { endCursor }`,
    `fragment W on WindowAggregate { cursor vwap }`,
  );
  expect(viaEdges.edges.map((e: { node: Node }) => e.node)).toEqual(pick("cursor", "vwap"));
  // The next page from a cursor of a projected page starts where the whole row's would.
  const next = await gql(
    `query($a: String) { windowAggregates(size: FIVE_MINUTES, symbols: ["UP", "DOWN"], first: 41) { nodes { windowEnd symbol } }
       after: windowAggregates(size: FIVE_MINUTES, symbols: ["UP", "DOWN"], first: 1, after: $a) { nodes { windowEnd symbol } } }`,
    { a: viaEdges.pageInfo.endCursor },
  );
  expect(next.body.data.after.nodes).toEqual([next.body.data.windowAggregates.nodes[40]]);
});

test("a full one-minute window holds 60 trades, open and close by time", async () => {
  const end = new Date(T0 + 120_000).toISOString();
  const { body } = await gql(
    `query($from: DateTime, $to: DateTime) { windowAggregates(size: ONE_MINUTE, symbols: ["UP"], from: $from, to: $to) {
       nodes { windowStart windowEnd tickCount open close high low mean volume delayed } } }`,
    { from: end, to: new Date(T0 + 120_001).toISOString() },
  );
  const [w] = body.data.windowAggregates.nodes;
  expect(w).toMatchObject({
    windowStart: new Date(T0 + 60_000).toISOString(),
    windowEnd: end,
    tickCount: 60,
    delayed: false,
  });
  expect(w.open).toBeCloseTo(100 + 0.01 * 60, 9);
  expect(w.close).toBeCloseTo(100 + 0.01 * 119, 9);
  expect(w.mean).toBeCloseTo(100 + 0.01 * 89.5, 9);
});

test("topSymbols ranks the latest window by mean, ties by symbol; `at` picks an earlier window", async () => {
  const { body } = await gql(
    `{ topSymbols(size: FIVE_MINUTES) { size by windowEnd entries { rank symbol value aggregate { mean } } delayed } }`,
  );
  const r = body.data.topSymbols;
  expect(r.entries.map((e: { symbol: string }) => e.symbol)).toEqual(["DOWN", "FLAT", "TIE1"]);
  expect(r.entries.map((e: { rank: number }) => e.rank)).toEqual([1, 2, 3]);
  expect(r.entries[0].value).toBe(r.entries[0].aggregate.mean);
  const at = new Date(T0 + 600_005).toISOString();
  const earlier = await gql(
    `query($at: DateTime) { topSymbols(size: ONE_MINUTE, by: CLOSE, limit: 5, at: $at) { windowEnd entries { symbol } } }`,
    { at },
  );
  expect(earlier.body.data.topSymbols.windowEnd).toBe(new Date(T0 + 600_000).toISOString());
  expect(earlier.body.data.topSymbols.entries.map((e: { symbol: string }) => e.symbol)).toEqual([
    "DOWN",
    "FLAT",
    "TIE1",
    "TIE2",
    "UP",
  ]);
});

test("topSymbolsHistory gives one ranking per 10-second window in [from, to)", async () => {
  const { body } = await gql(
    `query($from: DateTime!, $to: DateTime!) { topSymbolsHistory(size: ONE_MINUTE, from: $from, to: $to) { windowEnd entries { symbol } } }`,
    { from: new Date(T0 + 300_000).toISOString(), to: new Date(T0 + 360_000).toISOString() },
  );
  const ends = body.data.topSymbolsHistory.map((r: { windowEnd: string }) => Date.parse(r.windowEnd) - T0);
  expect(ends).toEqual([300_000, 310_000, 320_000, 330_000, 340_000, 350_000]);
  expect(body.data.topSymbolsHistory.every((r: { entries: unknown[] }) => r.entries.length === 3)).toBe(true);
});

test("topPriceStocks has one entry per 5-minute tumbling window", async () => {
  const { body } = await gql(
    `query($from: DateTime, $to: DateTime) { topPriceStocks(from: $from, to: $to) { size windowStart windowEnd entries { symbol } } }`,
    { from: new Date(T0).toISOString(), to: new Date(T0 + 3_600_000).toISOString() },
  );
  const list = body.data.topPriceStocks;
  expect(list.map((r: { windowEnd: string }) => (Date.parse(r.windowEnd) - T0) / 60_000)).toEqual([
    5, 10, 15, 20, 25, 30,
  ]);
  expect(
    list.every(
      (r: { size: string; entries: { symbol: string }[] }) =>
        r.size === "FIVE_MINUTES" && r.entries.length === 1,
    ),
  ).toBe(true);
  expect(list[0].entries[0].symbol).toBe("DOWN");
});

test("topMovers over the latest window and since the previous session's close", async () => {
  const { body } = await gql(`{
    w: topMovers(size: ONE_MINUTE) { basis size asOf gainers { rank symbol changePercent } losers { rank symbol changePercent } }
    s: topMovers(basis: SESSION, minVolume: 1) { basis size gainers { symbol price referencePrice change } losers { symbol referencePrice } }
  }`);
  expect(body.errors).toBeUndefined();
  expect(body.data.w.gainers.map((m: { symbol: string }) => m.symbol)).toEqual(["UP"]);
  expect(body.data.w.losers.map((m: { symbol: string }) => m.symbol)).toEqual(["DOWN"]);
  expect(body.data.w.gainers[0].changePercent).toBeGreaterThan(0);
  expect(body.data.s.size).toBeNull();
  expect(body.data.s.gainers).toEqual([
    { symbol: "UP", price: expect.any(Number), referencePrice: 90, change: expect.any(Number) },
  ]);
  expect(body.data.s.gainers[0].price).toBeCloseTo(100 + 0.01 * 1799, 9);
  expect(body.data.s.losers).toEqual([{ symbol: "DOWN", referencePrice: 250 }]);
});

test("RankBy.VWAP orders by Σ(price·size)/Σsize, ties by symbol, and reports it as the value", async () => {
  const at = new Date(T0 - 600_000).toISOString();
  const { body } = await gql(
    `query($at: DateTime!, $from: DateTime!, $to: DateTime!) {
      vwap: topSymbols(size: ONE_MINUTE, by: VWAP, limit: 5, at: $at) { by windowEnd entries { rank symbol value aggregate { vwap mean } } }
      mean: topSymbols(size: ONE_MINUTE, by: MEAN, limit: 5, at: $at) { entries { symbol } }
      history: topSymbolsHistory(size: ONE_MINUTE, by: VWAP, limit: 3, from: $from, to: $to) { by entries { symbol } }
    }`,
    { at, from: new Date(T0 - 1_080_000).toISOString(), to: at },
  );
  expect(body.errors).toBeUndefined();
  const { vwap, mean, history } = body.data;
  expect(vwap.by).toBe("VWAP");
  expect(vwap.windowEnd).toBe(at);
  expect(vwap.entries.map((e: { symbol: string }) => e.symbol)).toEqual(["VB", "VC", "VA"]);
  expect(mean.entries.map((e: { symbol: string }) => e.symbol)).toEqual(["VA", "VB", "VC"]);
  for (const e of vwap.entries) expect(e.value).toBe(e.aggregate.vwap);
  expect(vwap.entries[2].value).toBeCloseTo((30 * 90 * 1 + 30 * 80 * 100) / (30 + 30 * 100), 9);
  expect(vwap.entries[2].aggregate.mean).toBeCloseTo(85, 9);
  // Every full one-minute window of the span ranks the same way.
  expect(history.length).toBe(48);
  for (const r of history)
    expect([r.by, r.entries.map((e: { symbol: string }) => e.symbol)]).toEqual(["VWAP", ["VB", "VC", "VA"]]);
});

test("bad input is BAD_USER_INPUT", async () => {
  const bad = [
    `{ topSymbols(size: ONE_MINUTE, limit: 0) { windowEnd } }`,
    `{ topSymbols(size: ONE_MINUTE, limit: 1000) { windowEnd } }`,
    `{ windowAggregates(size: ONE_MINUTE, after: "nope") { nodes { symbol } } }`,
    `{ topSymbolsHistory(size: ONE_MINUTE, from: "2026-01-01T00:00:00Z", to: "2026-02-01T00:00:00Z") { windowEnd } }`,
    `{ topMovers(minVolume: -1) { asOf } }`,
  ];
  for (const q of bad) {
    const { body } = await gql(q);
    expect([q, body.errors?.[0].extensions?.code]).toEqual([q, "BAD_USER_INPUT"]);
  }
});

test("a user without REALTIME is served windows, rankings and movers only up to the delay cutoff, marked delayed", async () => {
  const bob = await t.token("bob", [Role.USER]);
  const asBob = (query: string, variables?: Record<string, unknown>) =>
    t.gql(query, { token: bob, variables }).then(({ body }) => {
      expect(body.errors).toBeUndefined();
      return body.data;
    });
  const lastEnd = CUTOFF - (CUTOFF % 10_000); // the newest window end at or before the cutoff
  const iso = (ms: number) => new Date(ms).toISOString();

  // Every page of UP's windows: exactly alice's up to the cutoff, the same values, marked delayed.
  const pages = async (gqlAs: typeof asBob) => {
    const out: Record<string, unknown>[] = [];
    let after: string | null = null;
    do {
      const data = await gqlAs(
        `query($after: String) { windowAggregates(size: ONE_MINUTE, symbols: ["UP"], first: 40, after: $after) {
           nodes { windowEnd open close mean volume delayed } pageInfo { hasNextPage endCursor } } }`,
        { after },
      );
      out.push(...data.windowAggregates.nodes);
      after = data.windowAggregates.pageInfo.hasNextPage ? data.windowAggregates.pageInfo.endCursor : null;
    } while (after);
    return out;
  };
  const asAlice = (query: string, variables?: Record<string, unknown>) =>
    gql(query, variables).then(({ body }) => body.data);
  const [bobs, alices] = await Promise.all([pages(asBob), pages(asAlice)]);
  const upToCutoff = alices.filter((w) => Date.parse(w.windowEnd as string) <= CUTOFF);
  expect(upToCutoff.length).toBeLessThan(alices.length);
  expect(bobs).toEqual(upToCutoff.map((w) => ({ ...w, delayed: true })));
  expect(bobs[0].windowEnd).toBe(iso(lastEnd));

  // The latest ranking is the cutoff's window, even when asked for a later one.
  const ranking = `{ windowEnd delayed entries { symbol value aggregate { delayed } } }`;
  const r = await asBob(
    `query($at: DateTime) { latest: topSymbols(size: ONE_MINUTE) ${ranking}
    later: topSymbols(size: ONE_MINUTE, at: $at) ${ranking} }`,
    { at: iso(T0 + 1_500_000) },
  );
  const atCutoff = await asAlice(
    `query($at: DateTime) { topSymbols(size: ONE_MINUTE, at: $at) ${ranking} }`,
    {
      at: iso(lastEnd),
    },
  );
  for (const got of [r.latest, r.later]) {
    expect(got.windowEnd).toBe(iso(lastEnd));
    expect(got.delayed).toBe(true);
    expect(got.entries).toEqual(
      atCutoff.topSymbols.entries.map((e: { aggregate: object }) => ({ ...e, aggregate: { delayed: true } })),
    );
  }

  // History and the 5-minute tumbling windows stop at the cutoff.
  const h = await asBob(
    `query($from: DateTime!, $to: DateTime!) {
    topSymbolsHistory(size: ONE_MINUTE, from: $from, to: $to) { windowEnd delayed }
    topPriceStocks(from: $from, to: $to) { windowEnd delayed } }`,
    { from: iso(T0), to: iso(T0 + 1_800_000) },
  );
  const ends = (list: { windowEnd: string; delayed: boolean }[]) => {
    expect(list.every((x) => x.delayed)).toBe(true);
    return list.map((x) => Date.parse(x.windowEnd) - T0);
  };
  expect(ends(h.topSymbolsHistory)).toEqual(
    Array.from({ length: (lastEnd - T0) / 10_000 }, (_, k) => (k + 1) * 10_000),
  );
  expect(ends(h.topPriceStocks)).toEqual([300_000, 600_000, 900_000]);

  // Movers: the cutoff's window; since the previous session, the last price before the cutoff's pane.
  const m = await asBob(`{ w: topMovers(size: ONE_MINUTE) { asOf delayed gainers { symbol price } }
    s: topMovers(basis: SESSION) { asOf delayed gainers { symbol price } } }`);
  expect(m.w).toEqual({
    asOf: iso(lastEnd),
    delayed: true,
    gainers: [{ symbol: "UP", price: expect.any(Number) }],
  });
  expect(m.w.gainers[0].price).toBeCloseTo(100 + 0.01 * ((lastEnd - T0) / 1000 - 1), 9);
  expect(m.s.asOf).toBe(iso(lastEnd));
  expect(m.s.delayed).toBe(true);
  expect(m.s.gainers).toEqual([{ symbol: "UP", price: expect.any(Number) }]);
  expect(m.s.gainers[0].price).toBeCloseTo(100 + 0.01 * ((lastEnd - T0) / 1000 - 1), 9);

  // As the market moves on, so does what the caller sees.
  await t.setMarketTime(new Date(NOW + 60_000));
  const moved = await asBob(`{ topSymbols(size: ONE_MINUTE) { windowEnd } }`);
  expect(moved.topSymbols.windowEnd).toBe(iso(lastEnd + 60_000));
});
