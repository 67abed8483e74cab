import { poolOf } from "../../src/db/sql";
import type { Pool } from "pg";
import { SignJWT } from "jose";
import WebSocket from "ws";
import { createEventBus, Topic, type EventBus } from "../../src/events/bus";
import { Role } from "../../src/policy/principal";
import { TOO_MANY_CONNECTIONS } from "../../src/server/ws-gateway";
import { WindowSize } from "../../src/windows/windows";
import { until } from "../support/wait";
import { grantEntitlements } from "../support/governance";
import { seedQuotes, seedWindows } from "../support/seed";
import { startReplica, startTestPlatform, TEST_SECRET, type TestPlatform } from "../support/server";

// Clients that misuse the graphql-transport-ws protocol, or vanish, against this server's own hooks
// (authentication on connect, per-principal caps, the access log), over raw sockets.
let t: TestPlatform;
let bus: EventBus;
let server: Awaited<ReturnType<typeof startReplica>>;
const CAPS = { maxConnectionsPerPrincipal: 2, maxSubscriptionsPerPrincipal: 2, subscriptionQueue: 5 };
// Rankings of 100 symbols with names of a thousand characters: about 200 KB an event that costs little
// to execute, so that a few dozen fill a socket's buffers in well under graphql-ws's keep-alive (12 s),
// after which a socket that answers no ping is dropped.
const SYMBOLS = Array.from({ length: 100 }, (_, k) => `S${String(k).padStart(3, "0")}${"x".repeat(996)}`);
const T0 = Date.parse("2026-01-05T14:31:00Z");
const ENDS = Array.from({ length: 60 }, (_, k) => new Date(T0 + k * 10_000));

beforeAll(async () => {
  t = await startTestPlatform();
  await seedQuotes(t.databaseUrl, { symbols: ["S000", ...SYMBOLS], perSymbol: 1 });
  await seedWindows(t.databaseUrl, { symbols: SYMBOLS, ends: ENDS });
  for (const p of ["pia", "quin", "reed", "slow"]) await grantEntitlements(t, p);
  bus = createEventBus();
  server = await startReplica(t, bus, { ...t.config, limits: { ...t.config.limits, ...CAPS } });
});
afterAll(async () => {
  await server.close();
  await t.close();
});

/** A fresh token (never verified before, so that verifying it takes a real asynchronous check). */
let minted = 0;
const freshToken = (sub: string) =>
  new SignJWT({ roles: [Role.USER], n: ++minted })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setExpirationTime("10m")
    .sign(new TextEncoder().encode(TEST_SECRET));

interface Raw {
  ws: WebSocket;
  messages: { id?: string; type: string; payload?: unknown }[];
  closed: Promise<{ code: number; reason: string }>;
  send(message: object): void;
}

/** A bare graphql-transport-ws socket, open; nothing sent yet. */
async function open(): Promise<Raw> {
  const ws = new WebSocket(server.wsUrl, "graphql-transport-ws");
  const messages: Raw["messages"] = [];
  ws.on("message", (d) => messages.push(JSON.parse(String(d))));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on("close", (code, reason) => resolve({ code, reason: String(reason) })),
  );
  await new Promise((r, j) => ws.once("open", r).once("error", j));
  return { ws, messages, closed, send: (m) => ws.send(JSON.stringify(m)) };
}

/** Opened and acknowledged. */
async function connected(sub: string): Promise<Raw> {
  const raw = await open();
  raw.send({ type: "connection_init", payload: { authorization: `Bearer ${await freshToken(sub)}` } });
  await until("the ack", () => (raw.messages.some((m) => m.type === "connection_ack") ? true : undefined));
  return raw;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(server.url.replace("/graphql", "/metrics"))).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

const TICKS = `subscription { quoteTicks(symbols: ["S000"]) { symbol price } }`;

/** Both caps hold their full allowance for `sub` again: two connections, two subscriptions. */
async function expectAllowance(sub: string): Promise<void> {
  const a = await connected(sub);
  const b = await connected(sub);
  a.send({ id: "1", type: "subscribe", payload: { query: TICKS } });
  b.send({ id: "2", type: "subscribe", payload: { query: TICKS } });
  await until(`${sub}'s two subscriptions running`, async () =>
    (await metric("tickgraph_subscribers")) === 2 ? true : undefined,
  );
  expect([...a.messages, ...b.messages].filter((m) => m.type === "error")).toEqual([]);
  a.ws.close(1000);
  b.ws.close(1000);
  await Promise.all([a.closed, b.closed]);
  await until("no subscriber left", async () =>
    (await metric("tickgraph_subscribers")) === 0 ? true : undefined,
  );
}

test("a subscribe before the connection is acknowledged closes the socket with 4401", async () => {
  const early = await open();
  early.send({ id: "1", type: "subscribe", payload: { query: TICKS } });
  expect(await early.closed).toEqual({ code: 4401, reason: "Unauthorized" });

  // connection_init and subscribe in one write: the subscribe arrives while the token is being checked.
  const eager = await open();
  const token = await freshToken("pia");
  const socket = (eager.ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
  socket.cork();
  eager.send({ type: "connection_init", payload: { authorization: `Bearer ${token}` } });
  eager.send({ id: "1", type: "subscribe", payload: { query: TICKS } });
  socket.uncork();
  expect(await eager.closed).toEqual({ code: 4401, reason: "Unauthorized" });
  expect(eager.messages.filter((m) => m.type === "next")).toEqual([]);
  await expectAllowance("pia");
});

test("a second subscribe under a running id closes the socket with 4409; its subscription frees its place", async () => {
  const c = await connected("quin");
  c.send({ id: "dup", type: "subscribe", payload: { query: TICKS } });
  await until("the first running", async () =>
    (await metric("tickgraph_subscribers")) === 1 ? true : undefined,
  );
  c.send({ id: "dup", type: "subscribe", payload: { query: TICKS } });
  expect(await c.closed).toEqual({ code: 4409, reason: "Subscriber for dup already exists" });
  await until("the subscription ended", async () =>
    (await metric("tickgraph_subscribers")) === 0 ? true : undefined,
  );
  await expectAllowance("quin");
});

test("sockets dropped mid-stream, or right after connection_init, give back their places under the caps", async () => {
  const steward = await t.token("sid", [Role.STEWARD]);
  // Two sockets of reed's, each with a running subscription that has delivered events: both caps full.
  const socketsOf = await Promise.all([connected("reed"), connected("reed")]);
  socketsOf.forEach((c, k) => c.send({ id: `s${k}`, type: "subscribe", payload: { query: TICKS } }));
  await until("two subscriptions running", async () =>
    (await metric("tickgraph_subscribers")) === 2 ? true : undefined,
  );
  const third = await open();
  third.send({ type: "connection_init", payload: { authorization: `Bearer ${await freshToken("reed")}` } });
  expect((await third.closed).code).toBe(TOO_MANY_CONNECTIONS);
  await until("ticks delivered", () => {
    bus.publish(Topic.QUOTES, {
      id: ["1"],
      symbol: ["S000"],
      time: [new Date().toISOString()],
      seq: [1],
      price: [10],
      size: [1],
      bid: [null],
      bidSize: [null],
      ask: [null],
      askSize: [null],
      exchange: ["V"],
      source: ["feed"],
      received: [Date.now()],
    });
    return socketsOf.every((c) => c.messages.some((m) => m.type === "next")) ? true : undefined;
  });
  // Their network goes: no close frame, the TCP connections just end.
  for (const c of socketsOf) (c.ws as unknown as { _socket: { destroy(): void } })._socket.destroy();
  await until("both subscriptions ended", async () =>
    (await metric("tickgraph_subscribers")) === 0 ? true : undefined,
  );
  // Sockets that go away between connection_init and its answer (the token still being checked).
  for (let k = 0; k < 4; k++) {
    const gone = await open();
    const token = await freshToken("reed");
    gone.send({ type: "connection_init", payload: { authorization: `Bearer ${token}` } });
    (gone.ws as unknown as { _socket: { destroy(): void } })._socket.destroy();
  }
  await expectAllowance("reed");

  // Each subscription's END entry is written (the two dropped and the two of the allowance check), the
  // dropped ones with the events they delivered.
  const ends = await until("four END entries", async () => {
    const { body } = await t.gql(
      `{ accessLog(first: 50, filter: { principal: "reed" }) { nodes { phase rowCount } } }`,
      { token: steward },
    );
    const found = body.data.accessLog.nodes.filter((n: { phase: string }) => n.phase === "END");
    return found.length >= 4 ? found : undefined;
  });
  expect(ends.length).toBe(4);
  expect(ends.filter((n: { rowCount: number }) => n.rowCount > 0).length).toBe(2);
}, 60_000);

test("a client that reads slowly is sent only the newest ranking once it reads again, and is never closed", async () => {
  // A steady reader of the same ranking for comparison, and a slow one on its own socket.
  const steady = await connected("pia");
  const slow = await connected("slow");
  const TOP = `subscription { topSymbols(size: ONE_MINUTE, limit: 100) {
    windowEnd entries { rank symbol value aggregate { symbol } } } }`;
  // Each is first sent the current value: the first window's ranking, the others stored only then.
  await server.dataSource.query(`DELETE FROM window_aggregates WHERE window_end > $1`, [ENDS[0]]);
  steady.send({ id: "top", type: "subscribe", payload: { query: TOP } });
  slow.send({ id: "top", type: "subscribe", payload: { query: TOP } });
  const nexts = (r: Raw) => r.messages.filter((m) => m.type === "next").length;
  await until("both sent the current value", () => (nexts(steady) && nexts(slow) ? true : undefined));
  await seedWindows(t.databaseUrl, { symbols: SYMBOLS, ends: ENDS });

  // Rankings are read straight from the replica's pool: count them to know each event was handled.
  const pool = poolOf(server.dataSource);
  const query = pool.query;
  let reads = 0;
  pool.query = function (this: Pool, ...args: Parameters<Pool["query"]>) {
    if (typeof args[0] === "string" && args[0].includes("window_aggregates")) reads++;
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as Pool["query"];
  const socket = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  try {
    socket.pause();
    // 60 windows (12 MB): far more than the socket's buffers hold.
    for (const end of ENDS.slice(1))
      bus.publish(Topic.WINDOWS, {
        opened: [{ size: WindowSize.ONE_MINUTE, windowEnd: end, count: SYMBOLS.length }],
        revised: [],
        finalUntil: null,
        watermark: end,
      });
    await until("every event handled", () => (reads >= ENDS.length - 1 ? true : undefined), 30_000);
    await until(
      "the steady reader got all",
      () => (steady.messages.filter((m) => m.type === "next").length === ENDS.length ? true : undefined),
      30_000,
    );
  } finally {
    pool.query = query;
    socket.resume();
  }
  const endsOf = (r: Raw) =>
    r.messages
      .filter((m) => m.type === "next")
      .map((m) =>
        Date.parse((m.payload as { data: { topSymbols: { windowEnd: string } } }).data.topSymbols.windowEnd),
      );
  const newest = ENDS.at(-1)!.getTime();
  await until("the newest ranking", () => (endsOf(slow).includes(newest) ? true : undefined), 30_000);
  const got = endsOf(slow);
  // The current value, what the socket took before it backed up, in order, then the newest: those
  // between were skipped.
  const k = got.length - 1;
  expect(k).toBeLessThan(ENDS.length - 1);
  expect(got.slice(0, k)).toEqual(ENDS.slice(0, k).map((d) => d.getTime()));
  expect(got[k]).toBe(newest);
  // The same bytes as the steady reader's newest, and the socket still open (more than 5 were waiting).
  const last = (r: Raw) => r.messages.filter((m) => m.type === "next").at(-1);
  expect(last(slow)).toEqual(last(steady));
  expect(slow.ws.readyState).toBe(WebSocket.OPEN);
  steady.ws.close(1000);
  slow.ws.close(1000);
  await Promise.all([steady.closed, slow.closed]);
}, 150_000);
