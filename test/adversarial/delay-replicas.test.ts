import { Client } from "pg";
import { startPlatform, type Platform } from "../../src/platform";
import { Entitlement, Role } from "../../src/policy/principal";
import { mintToken } from "../../src/policy/tokens";
import { grantEntitlements } from "../support/governance";
import { startTestPlatform, testConfig, TEST_SECRET, type TestPlatform } from "../support/server";
import { until } from "../support/wait";

// The delay holds on every replica: one that does not ingest (INGEST=off) measures DELAY_SECONDS on
// the market clock it can prove (stored trades, checkpoints, window events), never on wall time, and
// until it knows that clock it serves nothing delayed. Here the market runs an hour a minute, starting
// eleven months in the past, so wall time is far ahead of it.
const DELAY_SECONDS = 300;
let a: TestPlatform;
let b: Platform;
let pg: Client;
let bob: string;

beforeAll(async () => {
  a = await startTestPlatform(
    { INGEST: "on", DELAY_SECONDS: String(DELAY_SECONDS) },
    { feed: { seed: 3, symbols: 4, rate: 200, speed: 60, start: "2026-01-05T14:00:00Z" } },
  );
  b = await startPlatform(testConfig(a.databaseUrl, { INGEST: "off", DELAY_SECONDS: String(DELAY_SECONDS) }));
  pg = new Client({ connectionString: a.databaseUrl });
  await pg.connect();
  bob = await mintToken(TEST_SECRET, "bob", [Role.USER], 3600);
  await grantEntitlements(a, "rae", [Entitlement.REALTIME]);
});
afterAll(async () => {
  await pg.end();
  await b.close();
  await a.close();
});

async function onB(query: string, token: string) {
  const res = await fetch(b.server.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (await res.json()) as any;
}

const newestStored = async (): Promise<number> =>
  (await pg.query(`SELECT max(event_time) AS t FROM quotes`)).rows[0].t?.getTime() ?? 0;

test("bob on a replica without ingest is served data DELAY_SECONDS old on the market clock, not on wall time", async () => {
  // Some market time, well past the delay, must have gone by.
  await until(
    "ten market minutes stored",
    async () => {
      const rows = await pg.query(`SELECT max(event_time) - min(event_time) AS span FROM quotes`);
      return (rows.rows[0].span?.minutes ?? 0) >= 10 || undefined;
    },
    60_000,
  );
  // B knows no later market time than what is stored once it has answered: the bound is read after each
  // answer (read before, the market would move on meanwhile, an hour a minute).
  const cutoff = async () => (await newestStored()) - DELAY_SECONDS * 1000 + 1000;
  for (let k = 0; k < 5; k++) {
    const { data } = await onB(`{ quotes(first: 50) { nodes { eventTime delayed } } }`, bob);
    const quotesBound = await cutoff();
    const times = data.quotes.nodes.map((n: { eventTime: string }) => Date.parse(n.eventTime));
    expect(times.length).toBeGreaterThan(0);
    expect(data.quotes.nodes.every((n: { delayed: boolean }) => n.delayed)).toBe(true);
    // Nothing newer than the market's now (at most what is stored) minus the delay.
    expect(Math.max(...times)).toBeLessThanOrEqual(quotesBound);
    const windows = await onB(
      `{ windowAggregates(size: ONE_MINUTE, first: 5) { nodes { windowEnd } } }`,
      bob,
    );
    const windowsBound = await cutoff();
    expect(windows.data.windowAggregates.nodes.length).toBeGreaterThan(0);
    for (const n of windows.data.windowAggregates.nodes)
      expect(Date.parse(n.windowEnd)).toBeLessThanOrEqual(windowsBound);
  }
  // REALTIME is served the newest (at most a batch behind what was just read).
  const rae = await mintToken(TEST_SECRET, "rae", [Role.USER], 3600);
  const stored = await newestStored();
  const live = await onB(`{ quotes(first: 1) { nodes { eventTime delayed } } }`, rae);
  expect(live.data.quotes.nodes[0].delayed).toBe(false);
  expect(Date.parse(live.data.quotes.nodes[0].eventTime)).toBeGreaterThan(stored - DELAY_SECONDS * 1000);
}, 120_000);

test("a replica that does not know the market clock yet serves nothing delayed", async () => {
  const fresh = await startTestPlatform({ DELAY_SECONDS: String(DELAY_SECONDS) });
  const c = new Client({ connectionString: fresh.databaseUrl });
  await c.connect();
  try {
    // An hour old by the wall clock, but nothing says where the market is: withheld.
    const hourAgo = new Date(Date.now() - 3_600_000);
    await c.query(`INSERT INTO quotes (symbol, event_time, seq, price, size) VALUES ('OLD', $1, 1, 10, 1)`, [
      hourAgo,
    ]);
    const token = await fresh.token("bob");
    const first = await fresh.gql(`{ quotes(first: 5) { nodes { seq } } }`, { token });
    expect(first.body.data.quotes.nodes).toEqual([]);
    // Once it observes that trade, it is the market's now: still too new for a delayed view.
    await until("the market clock observed", () => fresh.platform.clock.now().getTime() >= hourAgo.getTime());
    expect(
      (await fresh.gql(`{ quotes(first: 5) { nodes { seq } } }`, { token })).body.data.quotes.nodes,
    ).toEqual([]);
    // The market moves on past the delay: the older trade is served, the new one is not.
    const later = new Date(hourAgo.getTime() + (DELAY_SECONDS + 60) * 1000);
    await c.query(`INSERT INTO quotes (symbol, event_time, seq, price, size) VALUES ('OLD', $1, 2, 11, 1)`, [
      later,
    ]);
    await until("the market clock moved", () => fresh.platform.clock.now().getTime() >= later.getTime());
    const served = await fresh.gql(`{ quotes(first: 5) { nodes { seq delayed } } }`, { token });
    expect(served.body.data.quotes.nodes).toEqual([{ seq: "1", delayed: true }]);
  } finally {
    await c.end();
    await fresh.close();
  }
});
