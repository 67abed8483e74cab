import { createClient, type Client as WsClient } from "graphql-ws";
import WebSocket from "ws";
import { createPgEventBus, type PgEventBus } from "../../src/events/pg-bus";
import type { RunningServer } from "../../src/server/server";
import { grantEntitlements } from "../support/governance";
import { startReplica, startTestPlatform, type TestPlatform } from "../support/server";
import { collect } from "./live.helpers";

// With EVENT_BUS=postgres, a replica that runs no ingest streams what the ingesting one commits: ticks
// and windows travel through NOTIFY.
let t: TestPlatform;
let bus: PgEventBus;
let b: RunningServer;
let client: WsClient;

beforeAll(async () => {
  t = await startTestPlatform(
    { INGEST: "on", EVENT_BUS: "postgres" },
    { feed: { seed: 3, symbols: 6, rate: 1000, speed: 60, start: "2026-01-05T14:29:00Z" } },
  );
  await grantEntitlements(t, "rita");
  bus = await createPgEventBus(t.databaseUrl);
  b = await startReplica(t, bus);
  client = createClient({
    url: b.wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: { authorization: `Bearer ${await t.token("rita")}` },
  });
});
afterAll(async () => {
  await client.dispose();
  await b.close();
  await bus.close();
  await t.close();
});

test("another replica streams ticks and rankings from the shared bus", async () => {
  const { body } = await t.gql(`{ instruments { symbol } }`);
  const symbol: string = body.data.instruments[0].symbol;
  const [ticks, rankings] = await Promise.all([
    collect<{ quoteTicks: { id: string; symbol: string } }>(
      client,
      `subscription($s: [String!]!) { quoteTicks(symbols: $s) { id symbol } }`,
      (e) => e.length >= 20,
      { variables: { s: [symbol] } },
    ),
    collect<{ topSymbols: { windowEnd: string } }>(
      client,
      `subscription { topSymbols(size: ONE_MINUTE) { windowEnd } }`,
      (e) => e.length >= 3,
    ),
  ]);
  expect(ticks.every((e) => e.data.quoteTicks.symbol === symbol)).toBe(true);
  expect(new Set(ticks.map((e) => e.data.quoteTicks.id)).size).toBe(ticks.length);
  const ends = rankings.map((e) => Date.parse(e.data.topSymbols.windowEnd));
  expect(ends.slice(1).every((x, i) => x > ends[i])).toBe(true);
});
