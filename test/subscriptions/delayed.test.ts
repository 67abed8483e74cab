import type { Client as WsClient } from "graphql-ws";
import { Entitlement } from "../../src/policy/principal";
import { grantEntitlements } from "../support/governance";
import { startTestPlatform, type TestPlatform } from "../support/server";
import { collect, type Event } from "./live.helpers";

// A caller without REALTIME gets live events only once their data is DELAY_SECONDS old on the market
// clock (60 s here: one wall second at --feed-speed 60), each marked delayed; without DEPTH, no bid/ask.
let t: TestPlatform;
let dave: WsClient;
const DELAY_MS = 60_000;

beforeAll(async () => {
  t = await startTestPlatform(
    { INGEST: "on", DELAY_SECONDS: "60" },
    { feed: { seed: 9, symbols: 6, rate: 1000, speed: 60, start: "2026-01-05T14:29:00Z" } },
  );
  dave = t.ws({ connectionParams: { authorization: `Bearer ${await t.token("dave")}` } });
});
afterAll(() => t.close());

/** The newest time dave may see, read as each event arrives. */
const cutoffNow = () => t.platform.ingest!.clock.now().getTime() - DELAY_MS;

function expectNeverEarly<T>(events: Event<T>[], timeOf: (data: T) => string): void {
  expect(events.length).toBeGreaterThan(0);
  for (const e of events) expect(Date.parse(timeOf(e.data))).toBeLessThanOrEqual(e.seen as number);
}

test("every live field holds each event until its time is DELAY_SECONDS old on the market clock", async () => {
  const { body } = await t.gql(`{ instruments { symbol } }`);
  const symbols = (body.data?.instruments ?? []).map((i: { symbol: string }) => i.symbol).slice(0, 3);
  const opts = { onEvent: cutoffNow };
  const [ticks, rankings, aggregates, movers] = await Promise.all([
    collect<{ quoteTicks: { eventTime: string; delayed: boolean; bid: number | null; ask: number | null } }>(
      dave,
      `subscription($s: [String!]!) { quoteTicks(symbols: $s) { eventTime delayed bid ask } }`,
      (e) => e.length >= 50,
      { ...opts, variables: { s: symbols } },
    ),
    collect<{ topSymbols: { windowEnd: string; delayed: boolean } }>(
      dave,
      `subscription { topSymbols(size: ONE_MINUTE) { windowEnd delayed } }`,
      (e) => e.length >= 5,
      opts,
    ),
    collect<{ windowAggregates: { windowEnd: string; delayed: boolean } }>(
      dave,
      `subscription { windowAggregates(size: ONE_MINUTE) { windowEnd delayed } }`,
      (e) => new Set(e.map((x) => x.data.windowAggregates.windowEnd)).size >= 3,
      opts,
    ),
    collect<{ topMovers: { asOf: string; delayed: boolean } }>(
      dave,
      `subscription { topMovers(size: ONE_MINUTE) { asOf delayed } }`,
      (e) => e.length >= 3,
      opts,
    ),
  ]);
  expectNeverEarly(ticks, (d) => d.quoteTicks.eventTime);
  expectNeverEarly(rankings, (d) => d.topSymbols.windowEnd);
  expectNeverEarly(aggregates, (d) => d.windowAggregates.windowEnd);
  expectNeverEarly(movers, (d) => d.topMovers.asOf);
  for (const e of ticks) expect(e.data.quoteTicks).toMatchObject({ delayed: true, bid: null, ask: null });
  for (const d of [
    ...rankings.map((e) => e.data.topSymbols),
    ...aggregates.map((e) => e.data.windowAggregates),
  ])
    expect(d.delayed).toBe(true);
  for (const e of movers) expect(e.data.topMovers.delayed).toBe(true);
  // Held, not lost: the ticks of each symbol come in order, without gaps in the stream once it runs.
  const times = ticks.map((e) => Date.parse(e.data.quoteTicks.eventTime));
  expect(times.slice(1).every((x, i) => x >= times[i])).toBe(true);
});

// Its stream moves to the real-time view's: what was still held back for it is skipped (the query API
// serves it), never sent twice or out of order.
test("a caller granted REALTIME mid-stream goes from delayed to live events, in order", async () => {
  const eve = t.ws({ connectionParams: { authorization: `Bearer ${await t.token("eve")}` } });
  const fresh = (e: Event<{ topSymbols: { windowEnd: string; delayed: boolean } }>) =>
    !e.data.topSymbols.delayed && Date.parse(e.data.topSymbols.windowEnd) > (e.seen as number) - DELAY_MS;
  const stream = collect<{ topSymbols: { windowEnd: string; delayed: boolean } }>(
    eve,
    `subscription { topSymbols(size: ONE_MINUTE) { windowEnd delayed } }`,
    (e) => e.some(fresh),
    { onEvent: () => t.platform.ingest!.clock.now().getTime() },
  );
  // Some rankings are held or sent delayed first.
  await collect(dave, `subscription { topSymbols(size: ONE_MINUTE) { windowEnd } }`, (e) => e.length >= 2);
  await grantEntitlements(t, "eve", [Entitlement.REALTIME]);
  const events = await stream;
  expect(events[0].data.topSymbols.delayed).toBe(true);
  const ends = events.map((e) => Date.parse(e.data.topSymbols.windowEnd));
  expect(ends.slice(1).every((x, i) => x > ends[i])).toBe(true);
  const firstLive = events.findIndex((e) => !e.data.topSymbols.delayed);
  expect(events.slice(firstLive).every((e) => !e.data.topSymbols.delayed)).toBe(true);
});
