import { Client } from "pg";
import type { Client as WsClient } from "graphql-ws";
import { Entitlement } from "../../src/policy/principal";
import { grantEntitlements } from "../support/governance";
import { startTestPlatform, type TestPlatform } from "../support/server";
import { collect } from "./live.helpers";

// Live fields over graphql-ws at --feed-speed 60 (a market minute per wall second), for a caller with
// REALTIME: every event as soon as the data is stored, marked not delayed.
let t: TestPlatform;
let rita: WsClient;
let symbols: string[];
const START = Date.parse("2026-01-05T14:29:00Z");

beforeAll(async () => {
  t = await startTestPlatform(
    { INGEST: "on" },
    { feed: { seed: 5, symbols: 8, rate: 1500, speed: 60, start: new Date(START).toISOString() } },
  );
  await grantEntitlements(t, "rita");
  await grantEntitlements(t, "nora", [Entitlement.REALTIME]);
  rita = t.ws({ connectionParams: { authorization: `Bearer ${await t.token("rita")}` } });
  for (;;) {
    const { body } = await t.gql(`{ instruments { symbol } }`);
    symbols = (body.data?.instruments ?? []).map((i: { symbol: string }) => i.symbol);
    if (symbols.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
});
afterAll(() => t.close());

type Tick = {
  id: string;
  symbol: string;
  seq: string;
  price: number;
  bid: number | null;
  bidSize: number | null;
  ask: number | null;
  askSize: number | null;
  delayed: boolean;
};
const TICK = `id symbol seq price bid bidSize ask askSize delayed`;

test("quoteTicks streams the stored trades of the symbols asked for, each once, with depth when entitled", async () => {
  const wanted = symbols.slice(0, 2);
  const events = await collect<{ quoteTicks: Tick }>(
    rita,
    `subscription($s: [String!]!) { quoteTicks(symbols: $s) { ${TICK} } }`,
    (e) => e.length >= 60,
    { variables: { s: wanted } },
  );
  const ticks = events.map((e) => e.data.quoteTicks);
  expect(new Set(ticks.map((q) => q.symbol))).toEqual(new Set(wanted));
  expect(ticks.every((q) => q.delayed === false)).toBe(true);
  expect(new Set(ticks.map((q) => q.id)).size).toBe(ticks.length);
  expect(ticks.some((q) => q.bid !== null && q.ask !== null)).toBe(true);

  const db = new Client({ connectionString: t.databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query(
      `SELECT id::text, symbol, seq::text, price, bid, bid_size AS "bidSize", ask, ask_size AS "askSize"
       FROM quotes WHERE id = ANY($1::int8[])`,
      [ticks.map((q) => q.id)],
    );
    const stored = new Map(rows.map((r) => [r.id, r]));
    for (const q of ticks) {
      const { delayed: _delayed, ...rest } = q;
      expect(stored.get(q.id)).toEqual(rest);
    }
  } finally {
    await db.end();
  }
});

test("quoteTicks masks bid and ask for a caller without DEPTH, and says so in the event's extensions", async () => {
  const nora = t.ws({ connectionParams: { authorization: `Bearer ${await t.token("nora")}` } });
  const events = await collect<{ quoteTicks: Tick }>(
    nora,
    `subscription($s: [String!]!) { quoteTicks(symbols: $s) { ${TICK} } }`,
    (e) => e.length >= 20,
    { variables: { s: symbols.slice(0, 3) } },
  );
  for (const e of events) {
    expect(e.data.quoteTicks).toMatchObject({
      bid: null,
      bidSize: null,
      ask: null,
      askSize: null,
      delayed: false,
    });
    expect(e.extensions?.masked).toEqual(["Quote.ask", "Quote.askSize", "Quote.bid", "Quote.bidSize"]);
  }
});

type Ranking = {
  size: string;
  windowStart: string;
  windowEnd: string;
  delayed: boolean;
  entries: { rank: number; symbol: string; value: number }[];
};
const RANKING = `size windowStart windowEnd delayed entries { rank symbol value }`;

test("topSymbols sends a ranking for every new one-minute window, as the query ranks it", async () => {
  const events = await collect<{ topSymbols: Ranking }>(
    rita,
    `subscription { topSymbols(size: ONE_MINUTE, limit: 3) { ${RANKING} } }`,
    (e) => new Set(e.map((x) => x.data.topSymbols.windowEnd)).size >= 6,
  );
  const rankings = events.map((e) => e.data.topSymbols);
  const ends = [...new Set(rankings.map((r) => Date.parse(r.windowEnd)))];
  expect(ends.slice(1).map((e, i) => e - ends[i])).toEqual(ends.slice(1).map(() => 10_000));
  const token = await t.token("rita");
  for (const r of rankings) {
    expect(r).toMatchObject({ size: "ONE_MINUTE", delayed: false });
    expect(Date.parse(r.windowEnd) - Date.parse(r.windowStart)).toBe(60_000);
    expect(r.entries.map((e) => e.rank)).toEqual([1, 2, 3]);
    const { body } = await t.gql(
      `query($at: DateTime!) { topSymbols(size: ONE_MINUTE, limit: 3, at: $at) { windowEnd entries { rank symbol value } } }`,
      { token, variables: { at: r.windowEnd } },
    );
    expect(body.data.topSymbols).toEqual({ windowEnd: r.windowEnd, entries: r.entries });
  }
});

test("topPriceStock fires on 5-minute boundaries only, though 5-minute windows open every 10 s", async () => {
  const fiveMinute: string[] = [];
  const stopFive = rita.subscribe<{ topSymbols: Ranking }>(
    { query: `subscription { topSymbols(size: FIVE_MINUTES) { windowEnd } }` },
    {
      next: (r) => r.data && fiveMinute.push(r.data.topSymbols.windowEnd),
      error: () => {},
      complete: () => {},
    },
  );
  let events;
  try {
    events = await collect<{ topPriceStock: Ranking }>(
      rita,
      `subscription { topPriceStock { ${RANKING} } }`,
      (e) => e.length >= 2,
    );
  } finally {
    stopFive();
  }
  const ends = events.map((e) => Date.parse(e.data.topPriceStock.windowEnd));
  expect(ends[1] - ends[0]).toBe(300_000);
  for (const { data } of events) {
    const r = data.topPriceStock;
    expect(Date.parse(r.windowEnd) % 300_000).toBe(0);
    expect(Date.parse(r.windowEnd) - Date.parse(r.windowStart)).toBe(300_000);
    expect(r).toMatchObject({ size: "FIVE_MINUTES", delayed: false });
    expect(r.entries).toHaveLength(1);
  }
  const between = fiveMinute.map(Date.parse).filter((e) => e > ends[0] && e < ends[1]);
  expect(between.length).toBeGreaterThan(0);
  expect(between.every((e) => e % 300_000 !== 0)).toBe(true);
});

type Aggregate = {
  symbol: string;
  size: string;
  windowStart: string;
  windowEnd: string;
  tickCount: number;
  delayed: boolean;
};
const AGGREGATE = `symbol size windowStart windowEnd tickCount delayed`;

test("windowAggregates sends every row of each new window, or only those of the symbols asked for", async () => {
  const one = symbols[0];
  const [all, filtered] = await Promise.all([
    collect<{ windowAggregates: Aggregate }>(
      rita,
      `subscription { windowAggregates(size: ONE_MINUTE) { ${AGGREGATE} } }`,
      (e) => new Set(e.map((x) => x.data.windowAggregates.windowEnd)).size >= 4,
    ),
    collect<{ windowAggregates: Aggregate }>(
      rita,
      `subscription($s: [String!]) { windowAggregates(size: ONE_MINUTE, symbols: $s) { ${AGGREGATE} } }`,
      (e) => e.length >= 4,
      { variables: { s: [one] } },
    ),
  ]);
  for (const { data } of filtered)
    expect(data.windowAggregates).toMatchObject({ symbol: one, size: "ONE_MINUTE", delayed: false });

  // The windows before the last one seen are complete: each holds a row per symbol that traded in it.
  const rows = all.map((e) => e.data.windowAggregates);
  const ends = [...new Set(rows.map((r) => r.windowEnd))].slice(0, -1);
  const token = await t.token("rita");
  for (const end of ends) {
    const got = rows.filter((r) => r.windowEnd === end);
    expect(got.every((r) => Date.parse(r.windowEnd) - Date.parse(r.windowStart) === 60_000)).toBe(true);
    const { body } = await t.gql(
      `query($from: DateTime!, $to: DateTime!) { windowAggregates(size: ONE_MINUTE, from: $from, to: $to, order: ASC) { nodes { symbol tickCount } } }`,
      { token, variables: { from: end, to: new Date(Date.parse(end) + 1).toISOString() } },
    );
    expect(got.map((r) => ({ symbol: r.symbol, tickCount: r.tickCount }))).toEqual(
      body.data.windowAggregates.nodes,
    );
  }
});

type Board = {
  basis: string;
  size: string | null;
  asOf: string;
  delayed: boolean;
  gainers: { rank: number; changePercent: number }[];
  losers: { rank: number; changePercent: number }[];
};
const BOARD = `basis size asOf delayed gainers { rank changePercent } losers { rank changePercent }`;

test("topMovers sends a board per new window of the size, or per new one-minute window on the session basis", async () => {
  const [window, session] = await Promise.all([
    collect<{ topMovers: Board }>(
      rita,
      `subscription { topMovers(size: ONE_MINUTE, limit: 3) { ${BOARD} } }`,
      (e) => e.length >= 3,
    ),
    collect<{ topMovers: Board }>(
      rita,
      `subscription { topMovers(basis: SESSION) { ${BOARD} } }`,
      (e) => e.length >= 3,
    ),
  ]);
  const boards = window.map((e) => e.data.topMovers);
  for (const b of boards) {
    expect(b).toMatchObject({ basis: "WINDOW", size: "ONE_MINUTE", delayed: false });
    expect(b.gainers.length + b.losers.length).toBeGreaterThan(0);
    expect(
      b.gainers.every(
        (g, i) => g.changePercent > 0 && (i === 0 || g.changePercent <= b.gainers[i - 1].changePercent),
      ),
    ).toBe(true);
    expect(
      b.losers.every(
        (l, i) => l.changePercent < 0 && (i === 0 || l.changePercent >= b.losers[i - 1].changePercent),
      ),
    ).toBe(true);
  }
  const asOf = boards.map((b) => Date.parse(b.asOf));
  expect(asOf.slice(1).every((a, i) => a > asOf[i] && a % 10_000 === 0)).toBe(true);
  for (const { data } of session) {
    expect(data.topMovers).toMatchObject({ basis: "SESSION", size: null, delayed: false });
    expect(Date.parse(data.topMovers.asOf) % 10_000).toBe(0);
  }
});

test("arguments are checked when subscribing", async () => {
  const refused = collect(rita, `subscription { quoteTicks(symbols: []) { id } }`, () => true);
  await expect(refused).rejects.toThrow(/at least one symbol/);
  await expect(
    collect(rita, `subscription { topSymbols(size: ONE_MINUTE, limit: 0) { windowEnd } }`, () => true),
  ).rejects.toThrow(/limit must be between 1 and 100/);
});
