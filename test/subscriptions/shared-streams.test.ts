import { createClient, type Client as WsClient } from "graphql-ws";
import { until } from "../support/wait";
import type { Pool } from "pg";
import { poolOf } from "../../src/db/sql";
import WebSocket from "ws";
import { createEventBus, Topic, type EventBus } from "../../src/events/bus";
import type { CommittedTrades } from "../../src/core/trades";
import { Entitlement, Role } from "../../src/policy/principal";
import { SLOW_CONSUMER } from "../../src/server/fanout";
import { TOO_MANY_CONNECTIONS } from "../../src/server/ws-gateway";
import { WindowSize } from "../../src/windows/windows";
import { grantEntitlements, TEST_OWNER } from "../support/governance";
import { seedQuotes, seedWindows } from "../support/seed";
import { startReplica, startTestPlatform, type TestPlatform } from "../support/server";

// Fan-out over real sockets: one execution per event for every subscriber of an operation and view,
// each subscriber still governed, queued and counted on its own; per-principal caps.
let t: TestPlatform;
let bus: EventBus;
let server: Awaited<ReturnType<typeof startReplica>>;
const SYMBOLS = ["AAA", "BBB", "CCC", "DDD"];
const ENDS = Array.from({ length: 10 }, (_, k) => new Date(Date.parse("2026-01-05T14:31:00Z") + k * 10_000));
const CAPS = { maxConnectionsPerPrincipal: 4, maxSubscriptionsPerPrincipal: 6, subscriptionQueue: 50 };

beforeAll(async () => {
  t = await startTestPlatform({}, {}, async (url) => {
    await seedQuotes(url, { symbols: SYMBOLS, perSymbol: 1 });
    await seedWindows(url, { symbols: SYMBOLS, ends: ENDS });
  });
  for (const p of ["rita", "rosa", "dave", "slow", "capped"]) await grantEntitlements(t, p);
  await grantEntitlements(t, "nora", [Entitlement.REALTIME]);
  bus = createEventBus();
  server = await startReplica(t, bus, { ...t.config, limits: { ...t.config.limits, ...CAPS } });
});
afterAll(async () => {
  await Promise.all(clients.map(async (c) => c.dispose()));
  await server.close();
  await t.close();
});

const clients: WsClient[] = [];
async function connect(sub: string): Promise<WsClient> {
  const token = await t.token(sub);
  const c = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    onNonLazyError: () => {},
    connectionParams: { authorization: `Bearer ${token}` },
  });
  clients.push(c);
  return c;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(server.url.replace("/graphql", "/metrics"))).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

/** A bare graphql-transport-ws connection (to pause its reading, or watch its close), initialised. */
async function rawConnect(sub: string) {
  const token = await t.token(sub);
  const raw = new WebSocket(server.wsUrl, "graphql-transport-ws");
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    raw.on("close", (code, reason) => resolve({ code, reason: String(reason) })),
  );
  await new Promise((r) => raw.once("open", r));
  raw.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
  return { raw, closed };
}

interface Stream<T> {
  events: { data: T; extensions?: Record<string, unknown> }[];
  errors: unknown[];
  stop(): void;
}
function stream<T>(c: WsClient, query: string, variables?: Record<string, unknown>): Stream<T> {
  const s: Stream<T> = { events: [], errors: [], stop: () => {} };
  s.stop = c.subscribe<T>(
    { query, variables },
    {
      next: (r) => (r.errors ? s.errors.push(...r.errors) : s.events.push(r as never)),
      error: (e) => s.errors.push(e),
      complete: () => {},
    },
  );
  return s;
}

function trades(rows: { symbol: string; bid: number }[]): CommittedTrades {
  const n = rows.length;
  const at = new Date().toISOString();
  return {
    id: rows.map((_, k) => String(1_000_000 + k)),
    symbol: rows.map((r) => r.symbol),
    time: rows.map(() => at),
    seq: rows.map((_, k) => k + 1),
    price: rows.map((r) => r.bid + 0.01),
    size: rows.map(() => 100),
    bid: rows.map((r) => r.bid),
    bidSize: rows.map(() => 1),
    ask: rows.map((r) => r.bid + 0.02),
    askSize: rows.map(() => 1),
    exchange: Array(n).fill("V"),
    source: Array(n).fill("test"),
    received: Array(n).fill(Date.now()),
  };
}

const opened = (end: Date) => ({
  opened: [{ size: WindowSize.ONE_MINUTE, windowEnd: end, count: SYMBOLS.length }],
  revised: [],
  finalUntil: null,
  watermark: end,
});

const TOP = `subscription { topSymbols(size: ONE_MINUTE, limit: 3) { windowEnd entries { symbol value } } }`;
type Top = { topSymbols: { windowEnd: string; entries: { symbol: string; value: number }[] } };

test("eight subscribers of one operation and view share one stream: one read per event, not one each", async () => {
  const streamsBefore = await metric("tickgraph_subscription_streams");
  // Each is first sent the current value: the first window's ranking, the others stored only then.
  await server.dataSource.query(`DELETE FROM window_aggregates WHERE window_end > $1`, [ENDS[0]]);
  const conns = [await connect("rita"), await connect("rita"), await connect("rosa"), await connect("rosa")];
  const subs = conns.flatMap((c) => [stream<Top>(c, TOP), stream<Top>(c, TOP)]);
  await until("8 subscribers", async () => (await metric("tickgraph_subscribers")) === 8);
  expect(await metric("tickgraph_subscription_streams")).toBe(streamsBefore + 1);
  await until("the current value each", () => subs.every((s) => s.events.length === 1));
  await seedWindows(t.databaseUrl, { symbols: SYMBOLS, ends: ENDS });

  // Statements reading windows on this replica's pool (rankings are read straight from it).
  const pool = poolOf(server.dataSource);
  const query = pool.query;
  let reads = 0;
  pool.query = function (this: Pool, ...args: Parameters<Pool["query"]>) {
    if (typeof args[0] === "string" && args[0].includes("window_aggregates")) reads++;
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as Pool["query"];
  try {
    for (const end of ENDS.slice(1)) bus.publish(Topic.WINDOWS, opened(end));
    await until("10 rankings each", () => subs.every((s) => s.events.length === 10));
  } finally {
    pool.query = query;
  }
  // A stream per subscriber would read the rankings 72 times; the shared one reads them once per event.
  expect(reads).toBe(ENDS.length - 1);

  for (const s of subs) expect(s.events).toEqual(subs[0].events);
  const { body } = await t.gql(
    `query($e: DateTime!) { topSymbols(size: ONE_MINUTE, limit: 3, at: $e) { windowEnd entries { symbol value } } }`,
    { variables: { e: ENDS[9].toISOString() } },
  );
  expect(subs[0].events[9].data.topSymbols).toEqual(body.data.topSymbols);
  subs.forEach((s) => s.stop());
  await until("all gone", async () => (await metric("tickgraph_subscribers")) === 0);
  expect(await metric("tickgraph_subscription_streams")).toBe(streamsBefore);

  // Each subscriber's own access-log account: START and END, the END with the events it was sent.
  // (Written once each subscription has ended, which may be a moment after it left its stream.)
  const steward = await t.token("sam", [Role.STEWARD]);
  let ends: unknown[] = [];
  await until("rosa's four END entries", async () => {
    const log = await t.gql(
      `{ accessLog(first: 50, filter: { principal: "rosa" }) { nodes { phase rowCount decision } } }`,
      { token: steward },
    );
    ends = log.body.data.accessLog.nodes.filter((n: { phase: string }) => n.phase === "END");
    return ends.length >= 4;
  });
  expect(ends).toEqual(Array(4).fill({ phase: "END", rowCount: 10, decision: "ALLOWED" }));
}, 90_000);

const TICKS = `subscription($s: [String!]!) { quoteTicks(symbols: $s) { symbol bid } }`;
type Tick = { quoteTicks: { symbol: string; bid: number | null } };

test("each view has its own stream: depth for the entitled, masked for the rest", async () => {
  const rita = stream<Tick>(await connect("rita"), TICKS, { s: ["AAA"] });
  const nora = stream<Tick>(await connect("nora"), TICKS, { s: ["AAA"] });
  await until("2 subscribers", async () => (await metric("tickgraph_subscribers")) === 2);
  bus.publish(
    Topic.QUOTES,
    trades([
      { symbol: "BBB", bid: 1 },
      { symbol: "AAA", bid: 99.5 },
    ]),
  );
  await until("a tick each", () => rita.events.length === 1 && nora.events.length === 1);
  expect(rita.events[0]).toEqual({ data: { quoteTicks: { symbol: "AAA", bid: 99.5 } } });
  expect(nora.events[0]).toEqual({
    data: { quoteTicks: { symbol: "AAA", bid: null } },
    extensions: { masked: ["Quote.bid"] },
  });
  rita.stop();
  nora.stop();
});

test("an entitlement revoked mid-stream moves the subscriber to its new view within a second or so", async () => {
  const dave = stream<Tick>(await connect("dave"), TICKS, { s: ["CCC"] });
  await until("subscribed", async () => (await metric("tickgraph_subscribers")) === 1);
  bus.publish(Topic.QUOTES, trades([{ symbol: "CCC", bid: 50 }]));
  await until("the first tick", () => dave.events.length === 1);
  expect(dave.events[0].data.quoteTicks.bid).toBe(50);

  const owner = await t.token(TEST_OWNER, [Role.OWNER]);
  const { body } = await t.gql(
    `mutation { revokeEntitlement(principal: "dave", entitlement: DEPTH) { id } }`,
    {
      token: owner,
    },
  );
  expect(body.errors).toBeUndefined();
  await until(
    "a masked tick",
    () => {
      bus.publish(Topic.QUOTES, trades([{ symbol: "CCC", bid: 51 }]));
      return dave.events.some((e) => e.data.quoteTicks.bid === null);
    },
    5000,
  );
  const masked = dave.events.find((e) => e.data.quoteTicks.bid === null)!;
  expect(masked.extensions).toEqual({ masked: ["Quote.bid"] });
  expect(dave.errors).toEqual([]);
  dave.stop();
}, 60_000);

test("a client that stops reading its ticks is closed with 4008, and only that client", async () => {
  // Ticks of a symbol with a thousand-character name (about 1 KB an event): the socket's buffers fill
  // within a few batches, well before graphql-ws's keep-alive (12 s) would drop the silent socket.
  const symbol = `D${"d".repeat(999)}`;
  const { raw, closed } = await rawConnect("slow");
  await new Promise((r) => raw.once("message", r));
  raw.send(
    JSON.stringify({
      id: "s1",
      type: "subscribe",
      payload: {
        query: `subscription($s: [String!]!) { quoteTicks(symbols: $s) { symbol bid ask exchange } }`,
        variables: { s: [symbol] },
      },
    }),
  );
  const reader = stream<Tick>(await connect("rita"), TICKS, { s: [symbol] });
  try {
    await until("2 subscribers", async () => (await metric("tickgraph_subscribers")) === 2);
    // Stop reading: the kernel's buffers fill, then the server's, then the subscription's queue.
    (raw as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const slowBefore = await metric("tickgraph_subscription_slow_consumers_total");
    const batch = trades(Array.from({ length: 2000 }, () => ({ symbol, bid: 12.34 })));
    let published = 0;
    // A batch at a time, each once the reading client has all of the last: the reader never falls behind
    // (on a loaded machine, unpaced batches would make it a slow consumer too), the paused one does.
    await until(
      "the slow client closed",
      async () => {
        await until("the reader has every tick so far", () => reader.events.length === published);
        bus.publish(Topic.QUOTES, batch);
        published += 2000;
        return (await metric("tickgraph_subscription_slow_consumers_total")) > slowBefore;
      },
      60_000,
    );
    (raw as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await closed).toEqual({
      code: SLOW_CONSUMER,
      reason: expect.stringMatching(/^Slow consumer: more than 50 events waiting for subscription s1/),
    });
    // The client that reads gets every tick.
    await until("every tick", () => reader.events.length === published, 30_000);
  } finally {
    reader.stop();
  }
}, 90_000);

test("per-principal caps: a connection over the cap closes with 4029, a subscription over it is RATE_LIMITED", async () => {
  const conns = await Promise.all([1, 2, 3, 4].map(() => connect("capped")));
  const subs = conns
    .slice(0, 3)
    .flatMap((c) => [stream<Tick>(c, TICKS, { s: ["AAA"] }), stream<Tick>(c, TICKS, { s: ["BBB"] })]);
  await until("6 subscribers", async () => (await metric("tickgraph_subscribers")) === 6);

  const seventh = stream<Tick>(conns[3], TICKS, { s: ["CCC"] });
  await until("refused", () => seventh.errors.length > 0);
  expect(seventh.errors[0]).toEqual([
    expect.objectContaining({
      message: "Too many subscriptions: capped has 6 running (the cap). End one first.",
      extensions: { code: "RATE_LIMITED", limit: 6 },
    }),
  ]);

  const { closed } = await rawConnect("capped");
  expect(await closed).toEqual({
    code: TOO_MANY_CONNECTIONS,
    reason: "Too many connections: capped has 4 open (the cap)",
  });

  // Ending one frees its place.
  subs[0].stop();
  await until("5 subscribers", async () => (await metric("tickgraph_subscribers")) === 5);
  const again = stream<Tick>(conns[3], TICKS, { s: ["CCC"] });
  await until("subscribed", async () => (await metric("tickgraph_subscribers")) === 6);
  expect(again.errors).toEqual([]);
  [...subs, again].forEach((s) => s.stop());
}, 90_000);
