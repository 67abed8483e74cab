import { grantEntitlements } from "../support/governance";
import { until } from "../support/wait";
import { startTestPlatform, type TestPlatform } from "../support/server";

// The whole path at --feed-speed 60 (a market hour per wall minute): feed → ingest → panes → window
// engine → GraphQL. One-minute rankings must have a window every 10 s of market time, and the top price
// stock an entry every 5 minutes of market time.
let t: TestPlatform;
let token: string;
const START = Date.parse("2026-01-05T14:29:00Z");

beforeAll(async () => {
  t = await startTestPlatform(
    { INGEST: "on" },
    { feed: { seed: 11, symbols: 12, rate: 3000, speed: 60, start: new Date(START).toISOString() } },
  );
  await grantEntitlements(t, "alice");
  token = await t.token("alice");
});
afterAll(() => t.close());

type Ranking = {
  windowStart: string;
  windowEnd: string;
  entries: { rank: number; symbol: string; value: number }[];
};

test("windows, rankings and the top price stock follow the market clock", async () => {
  const prices = await until(
    "two 5-minute tumbling windows",
    async () => {
      const { body } = await t.gql(
        `{ topPriceStocks(from: "2026-01-05T14:00:00Z", to: "2026-01-05T16:00:00Z") { windowStart windowEnd entries { rank symbol value } } }`,
        { token },
      );
      const list = body.data?.topPriceStocks as Ranking[] | undefined;
      return list && list.length >= 3 ? list : undefined;
    },
    40_000,
  );
  const ends = prices.map((r) => Date.parse(r.windowEnd));
  expect(ends.every((e) => e % 300_000 === 0)).toBe(true);
  expect(ends.slice(1).map((e, i) => e - ends[i])).toEqual(ends.slice(1).map(() => 300_000));
  for (const r of prices) {
    expect(Date.parse(r.windowEnd) - Date.parse(r.windowStart)).toBe(300_000);
    expect(r.entries).toHaveLength(1);
  }

  // Every 10 s of market time between the first full window and the latest has a one-minute ranking.
  const from = new Date(START + 120_000).toISOString();
  const to = new Date(ends.at(-1)!).toISOString();
  const { body } = await t.gql(
    `query($from: DateTime!, $to: DateTime!) { topSymbolsHistory(size: ONE_MINUTE, from: $from, to: $to) { windowEnd entries { rank symbol value } } }`,
    { token, variables: { from, to } },
  );
  const history = body.data.topSymbolsHistory as Ranking[];
  const hops = history.map((r) => Date.parse(r.windowEnd));
  expect(hops[0]).toBe(START + 120_000);
  expect(hops.slice(1).map((e, i) => e - hops[i])).toEqual(hops.slice(1).map(() => 10_000));
  expect(hops.at(-1)).toBe(Date.parse(to) - 10_000);
  for (const r of history) {
    expect(r.entries.map((e) => e.rank)).toEqual([1, 2, 3]);
    expect(r.entries[0].value).toBeGreaterThanOrEqual(r.entries[1].value);
    expect(r.entries[1].value).toBeGreaterThanOrEqual(r.entries[2].value);
  }

  // The latest ranking is recent: within a minute of market time of the ingest watermark. (A custodian
  // reads ingest status; without REALTIME it sees only windows that ended 15 market minutes ago, none
  // while the market is younger than that.)
  const custodian = await t.token("cathy", ["CUSTODIAN" as never]);
  const latest = await t.gql(`{ topSymbols(size: ONE_MINUTE) { windowEnd } }`, { token });
  const status = await t.gql(
    `{ ingestStatus { watermark } delayed: topSymbols(size: ONE_MINUTE) { windowEnd } }`,
    { token: custodian },
  );
  const delayed = status.body.data.delayed as { windowEnd: string } | null;
  const marketNow = Date.parse(status.body.data.ingestStatus.watermark) + 2000;
  if (delayed) expect(Date.parse(delayed.windowEnd)).toBeLessThanOrEqual(marketNow - 15 * 60_000);
  else expect(marketNow).toBeLessThan(START + 16 * 60_000 + 60_000);
  const lag =
    Date.parse(status.body.data.ingestStatus.watermark) - Date.parse(latest.body.data.topSymbols.windowEnd);
  expect(lag).toBeGreaterThanOrEqual(0);
  expect(lag).toBeLessThan(60_000);
});
