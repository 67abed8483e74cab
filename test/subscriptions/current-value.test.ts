import { Client } from "pg";
import type { Client as WsClient } from "graphql-ws";
import { rebuildWindows } from "../../src/windows/rebuild";
import { grantEntitlements } from "../support/governance";
import { startPlatformAtMarketTime, type ClockedPlatform } from "../support/market-clock";
import { seedQuotes } from "../support/seed";
import { record } from "../support/subscriptions";
import { until } from "../support/wait";
import { collect } from "./live.helpers";

// Every board sends its current value at once, read from the database and governed like its live
// events. Nothing ingests here and nothing is published: every event a subscriber receives is the value
// it was sent on subscribing (or, in the last test, re-read after the LISTEN connection came back).
const T0 = Date.parse("2026-01-05T14:30:00Z");
const at = (s: number) => new Date(T0 + s * 1000);
// Between two 5-minute boundaries (14:45 and 14:50), a minute of delay for callers without REALTIME.
const NOW = 1030;
const DELAY_S = 60;
let c: ClockedPlatform;
let rita: WsClient;
let dave: WsClient;
let ritaToken: string;
let daveToken: string;

beforeAll(async () => {
  c = await startPlatformAtMarketTime(at(NOW), { DELAY_SECONDS: String(DELAY_S), EVENT_BUS: "postgres" });
  // A trade a second per symbol from 14:30:01: the first windows began before the first trade.
  await seedQuotes(c.databaseUrl, {
    symbols: ["AAA", "BBB", "CCC"],
    perSymbol: 1000,
    start: at(0),
    marketNow: null,
  });
  const ds = c.platform.db.dataSource;
  await ds.query(`INSERT INTO window_progress (id, emitted_until, final_until) VALUES (1, $1, $1)`, [
    at(1010),
  ]);
  await rebuildWindows(ds, at(-60), at(1010));
  await grantEntitlements(c, "rita");
  [ritaToken, daveToken] = [await c.token("rita"), await c.token("dave")];
  rita = c.ws({ connectionParams: { authorization: `Bearer ${ritaToken}` } });
  dave = c.ws({ connectionParams: { authorization: `Bearer ${daveToken}` } });
}, 60_000);
afterAll(() => c?.close());

const RANKING = `size by windowStart windowEnd delayed entries { rank symbol value aggregate { revision } }`;
const BOARDS = {
  topSymbols: [
    `topSymbols(size: ONE_MINUTE, limit: 2) { ${RANKING} }`,
    `topSymbols(size: ONE_MINUTE, limit: 2) { ${RANKING} }`,
  ],
  topPriceStock: [`topPriceStock { ${RANKING} }`, `topPriceStocks { ${RANKING} }`],
  topMovers: [
    `topMovers(size: ONE_MINUTE) { basis size asOf delayed reason gainers { symbol changePercent } losers { symbol changePercent } }`,
    `topMovers(size: ONE_MINUTE) { basis size asOf delayed reason gainers { symbol changePercent } losers { symbol changePercent } }`,
  ],
} as const;

describe.each([
  ["rita (REALTIME)", () => rita, () => ritaToken, false],
  ["dave (delayed)", () => dave, () => daveToken, true],
])("%s", (_who, ws, token, delayed) => {
  test.each(Object.keys(BOARDS) as (keyof typeof BOARDS)[])(
    "%s sends the current value at once, as the query serves it to the same caller",
    async (field) => {
      const [sub, query] = BOARDS[field];
      const [event] = await collect<Record<string, unknown>>(
        ws(),
        `subscription { ${sub} }`,
        (e) => e.length >= 1,
      );
      const { body } = await c.gql(`{ ${query} }`, { token: token() });
      const served = body.data[Object.keys(body.data)[0]];
      // topPriceStocks lists the last hour's: the newest is the current one.
      const expected = Array.isArray(served) ? served.at(-1) : served;
      expect(event.data[field]).toEqual(expected);
      expect(expected).toMatchObject({ delayed });
      const time = Date.parse(
        (expected as { windowEnd?: string; asOf?: string }).windowEnd ?? (expected as { asOf: string }).asOf,
      );
      // Delayed: never newer than the caller's cutoff; with REALTIME, the newest window stored.
      expect(time).toBeLessThanOrEqual(at(delayed ? NOW - DELAY_S : 1010).getTime());
      if (field === "topPriceStock") expect(time % 300_000).toBe(0);
    },
  );

  test("windowAggregates sends the rows of the latest window at once", async () => {
    const events = await collect<{
      windowAggregates: { symbol: string; windowEnd: string; delayed: boolean; cursor: string };
    }>(
      ws(),
      `subscription { windowAggregates(size: FIVE_MINUTES) { symbol windowEnd delayed cursor } }`,
      (e) => e.length >= 3,
    );
    const rows = events.map((e) => e.data.windowAggregates);
    const { body } = await c.gql(
      `{ windowAggregates(size: FIVE_MINUTES, first: 3) { nodes { symbol windowEnd delayed cursor } } }`,
      { token: token() },
    );
    const latest = body.data.windowAggregates.nodes;
    expect(rows).toEqual(
      [...latest].sort((a: { symbol: string }, b: { symbol: string }) => (a.symbol < b.symbol ? -1 : 1)),
    );
    expect(new Set(rows.map((r) => r.windowEnd)).size).toBe(1);
    expect(rows.every((r) => r.delayed === delayed)).toBe(true);
  });
});

test("a subscriber that joins a running shared stream is sent the current value too", async () => {
  const op = `subscription { topSymbols(size: FIVE_MINUTES) { windowEnd entries { symbol } } }`;
  const first = record<{ topSymbols: { windowEnd: string } }>(rita, op);
  await until("the first subscriber's value", () => first.events.length > 0);
  const second = await collect<{ topSymbols: { windowEnd: string } }>(rita, op, (e) => e.length >= 1);
  expect(second[0].data).toEqual(first.events[0].data);
  first.stop();
});

test("windows that began before the first trade say so, with the span they cover", async () => {
  const { body } = await c.gql(
    `{ windowAggregates(size: ONE_MINUTE, symbols: ["AAA"], order: ASC, first: 8) { nodes { windowStart windowEnd partial coveredFrom } } }`,
  );
  const nodes: { windowStart: string; windowEnd: string; partial: boolean; coveredFrom: string }[] =
    body.data.windowAggregates.nodes;
  const firstTrade = at(1).toISOString();
  expect(nodes.length).toBe(8);
  for (const n of nodes) {
    const partial = Date.parse(n.windowStart) < Date.parse(firstTrade);
    expect(n).toMatchObject({ partial, coveredFrom: partial ? firstTrade : n.windowStart });
  }
  expect(nodes.filter((n) => n.partial).length).toBe(6);
});

test("a SESSION board without a previous session says why it is empty", async () => {
  const [event] = await collect<{
    topMovers: { gainers: unknown[]; losers: unknown[]; reason: string | null };
  }>(
    rita,
    `subscription { topMovers(basis: SESSION) { gainers { symbol } losers { symbol } reason } }`,
    (e) => e.length >= 1,
  );
  expect(event.data.topMovers).toMatchObject({ gainers: [], losers: [] });
  expect(event.data.topMovers.reason).toMatch(/no previous session/i);
  const { body } = await c.gql(`{ topMovers(basis: SESSION) { reason } }`);
  expect(body.data.topMovers.reason).toBe(event.data.topMovers.reason);
});

test("windowAggregates resumed by a caller without REALTIME replays in order up to the cutoff, the rest as it moves", async () => {
  const { body } = await c.gql(
    `{ windowAggregates(size: ONE_MINUTE, symbols: ["AAA"], order: ASC, first: 1) { nodes { windowEnd cursor } } }`,
    { token: daveToken },
  );
  const from = body.data.windowAggregates.nodes[0];
  const stream = record<{ windowAggregates: { windowEnd: string; delayed: boolean; cursor: string } }>(
    dave,
    `subscription($after: String) { windowAggregates(size: ONE_MINUTE, symbols: ["AAA"], after: $after) { windowEnd delayed cursor } }`,
    { after: from.cursor },
  );
  const stored = async (to: number) => {
    const page = await c.gql(
      `query($from: DateTime!, $to: DateTime!) { windowAggregates(size: ONE_MINUTE, symbols: ["AAA"], order: ASC, first: 500, from: $from, to: $to) { nodes { windowEnd cursor } } }`,
      { token: ritaToken, variables: { from: new Date(Date.parse(from.windowEnd) + 1), to: at(to) } },
    );
    return page.body.data.windowAggregates.nodes as { windowEnd: string; cursor: string }[];
  };
  // Every row after the cursor up to dave's cutoff (970 s), in order, each once.
  const upToCutoff = await stored(NOW - DELAY_S + 1);
  await until("the replay up to the cutoff", () => stream.events.length >= upToCutoff.length);
  const rows = () => stream.events.map((e) => e.data.windowAggregates);
  expect(rows().map(({ windowEnd, cursor }) => ({ windowEnd, cursor }))).toEqual(upToCutoff);
  expect(rows().every((r) => r.delayed)).toBe(true);
  // The market moves on: the rows the new cutoff passed.
  await c.setMarketTime(at(1050));
  const upToNew = await stored(1050 - DELAY_S + 1);
  expect(upToNew.length).toBeGreaterThan(upToCutoff.length);
  await until("the rows the cutoff passed", () => stream.events.length >= upToNew.length);
  expect(rows().map(({ windowEnd, cursor }) => ({ windowEnd, cursor }))).toEqual(upToNew);
  // Granted REALTIME, the stream moves to the real-time view and continues after the last row sent.
  await grantEntitlements(c, "dave");
  const all = await stored(2000);
  expect(all.length).toBeGreaterThan(upToNew.length);
  await until("every row", () => stream.events.length >= all.length);
  expect(rows().map(({ windowEnd, cursor }) => ({ windowEnd, cursor }))).toEqual(all);
  expect(rows().map((r) => r.delayed)).toEqual(all.map((_, k) => k < upToNew.length));
  stream.stop();
});

test("quoteTicks resumed by a caller without REALTIME replays the stored trades in order up to the cutoff", async () => {
  const dora = c.ws({ connectionParams: { authorization: `Bearer ${await c.token("dora")}` } });
  const db = new Client({ connectionString: c.databaseUrl });
  await db.connect();
  try {
    const stored = async (upTo: number) =>
      (
        await db.query(
          `SELECT id::text, seq::text, event_time AS "eventTime" FROM quotes
           WHERE symbol = 'BBB' AND event_time <= $1 ORDER BY quotes.id`,
          [at(upTo)],
        )
      ).rows.map((r) => ({ id: r.id, seq: r.seq, eventTime: r.eventTime.toISOString() }));
    const before = await stored(100);
    const from = before.at(-1)!;
    // Its cursor as the API gives it: the quotes query's nodes carry the same cursor as the stream's events.
    const { body } = await c.gql(
      `query($to: DateTime!) { quotes(symbols: ["BBB"], to: $to, first: 1) { nodes { id cursor } } }`,
      { variables: { to: new Date(Date.parse(from.eventTime) + 1).toISOString() } },
    );
    expect(body.data.quotes.nodes[0].id).toBe(from.id);
    const cursor: string = body.data.quotes.nodes[0].cursor;
    const ticks = record<{ quoteTicks: { id: string; seq: string; eventTime: string; delayed: boolean } }>(
      dora,
      `subscription($after: String) { quoteTicks(symbols: ["BBB"], after: $after) { id seq eventTime delayed } }`,
      { after: cursor },
    );
    // The market is at 1050 s: dora sees up to 990 s.
    const upToCutoff = (await stored(990)).slice(before.length);
    await until("the replay up to the cutoff", () => ticks.events.length >= upToCutoff.length);
    const got = () =>
      ticks.events.map(
        ({
          data: {
            quoteTicks: { delayed: _d, ...q },
          },
        }) => q,
      );
    expect(got()).toEqual(upToCutoff);
    expect(ticks.events.every((e) => e.data.quoteTicks.delayed)).toBe(true);
    await c.setMarketTime(at(1100));
    const rest = (await stored(1040)).slice(before.length);
    expect(rest.length).toBeGreaterThan(upToCutoff.length);
    await until("the trades the cutoff passed", () => ticks.events.length >= rest.length);
    expect(got()).toEqual(rest);
    ticks.stop();
  } finally {
    await db.end();
  }
});

test("after the LISTEN connection comes back, rankings and windows are re-read from the database", async () => {
  const ranking = record<{ topSymbols: { windowEnd: string; entries: { symbol: string; value: number }[] } }>(
    rita,
    `subscription { topSymbols(size: ONE_MINUTE, limit: 1) { windowEnd entries { symbol value } } }`,
  );
  const windows = record<{ windowAggregates: { symbol: string; mean: number; revision: number } }>(
    rita,
    `subscription { windowAggregates(size: ONE_MINUTE, symbols: ["CCC"]) { symbol mean revision } }`,
  );
  await until("both current values", () => ranking.events.length > 0 && windows.events.length > 0);
  const end = ranking.events[0].data.topSymbols.windowEnd;
  // A revision no event announces (as if its NOTIFY was lost while the connection was down).
  const db = new Client({ connectionString: c.databaseUrl });
  await db.connect();
  try {
    await db.query(
      `UPDATE window_aggregates SET mean = 5000, revision = revision + 1, updated_at = now()
       WHERE size = 'ONE_MINUTE' AND window_end = $1 AND symbol = 'CCC'`,
      [end],
    );
    await db.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = 'tickgraph-listen'`,
    );
  } finally {
    await db.end();
  }
  await until("the re-read values", () => ranking.events.length > 1 && windows.events.length > 1, 30_000);
  expect(ranking.events[1].data.topSymbols).toEqual({
    windowEnd: end,
    entries: [{ symbol: "CCC", value: 5000 }],
  });
  expect(windows.events[1].data.windowAggregates).toEqual({ symbol: "CCC", mean: 5000, revision: 1 });
  ranking.stop();
  windows.stop();
});
