import WebSocket from "ws";
import { Entitlement, Role } from "../../src/policy/principal";
import { grantEntitlements } from "../support/governance";
import { seedQuotes, seedWindows } from "../support/seed";
import { startTestPlatform, wsQuery, type TestPlatform } from "../support/server";
import { until } from "../support/wait";

// Limits hold on every path: WebSocket messages are capped like HTTP bodies; every list costs its real
// size; responses and events are capped; the per-principal subscription caps and cost budget hold
// under bursts; subscribers share a stream by what is executed, whatever they call their operation.
let t: TestPlatform;
const SYMBOLS = Array.from({ length: 300 }, (_, k) => `S${String(k).padStart(3, "0")}`);
const ENDS = Array.from({ length: 360 }, (_, k) => new Date(Date.parse("2026-01-05T14:31:00Z") + k * 10_000));

beforeAll(async () => {
  t = await startTestPlatform(
    {
      MAX_SUBSCRIPTIONS_PER_PRINCIPAL: "200",
      MAX_SUBSCRIPTION_COST: "1500",
      MAX_RESPONSE_BYTES: "150000",
      MAX_CONNECTIONS_PER_PRINCIPAL: "64",
    },
    {},
    // Seeded before the start: lists returned whole are costed at the size read then.
    async (url) => {
      await seedQuotes(url, { symbols: SYMBOLS, perSymbol: 4 });
      await seedWindows(url, { symbols: SYMBOLS.slice(0, 20), ends: ENDS });
    },
  );
  await grantEntitlements(t, "lu", [Entitlement.REALTIME]);
});
afterAll(() => t.close());

const codeOf = (body: { errors?: { extensions?: Record<string, unknown> }[] }) =>
  body.errors?.[0]?.extensions?.code;

test("a frame over the size limit is closed with 1009 before it is read, and the server serves on", async () => {
  const ws = new WebSocket(t.wsUrl, "graphql-transport-ws");
  await new Promise((r) => ws.once("open", r));
  const closed = new Promise<number>((r) => ws.once("close", (code) => r(code)));
  ws.send("x".repeat(20 * 1024 * 1024));
  expect(await closed).toBe(1009);
  expect((await t.gql(`{ me { id } }`)).body).toEqual({ data: { me: { id: "alice" } } });
});

test("a long history costs its windows: four aliased copies are refused, one is served", async () => {
  const one = (alias: string) =>
    `${alias}: topSymbolsHistory(size: ONE_MINUTE, from: "2026-01-05T14:30:00Z", to: "2026-01-05T17:15:00Z") { windowEnd entries { symbol value aggregate { open close } } }`;
  const lu = await t.token("lu", [Role.USER]);
  const single = await t.gql(`{ ${one("a")} }`, { token: lu });
  expect(single.body.errors).toBeUndefined();
  expect(single.body.data.a.length).toBeGreaterThan(300);
  const four = await t.gql(`{ ${["a", "b", "c", "d"].map(one).join(" ")} }`, { token: lu });
  expect(codeOf(four.body)).toBe("QUERY_TOO_COMPLEX");
  expect(four.body.errors![0].message).toMatch(/exceeds the limit of 50000/);
});

test("lists returned whole cost their live size", async () => {
  const q = (n: number) =>
    `{ ${Array.from({ length: n }, (_, k) => `i${k}: instruments { symbol name exchange sector latestQuote { price size eventTime } }`).join(" ")} }`;
  // 300 instruments × 8 fields: a few copies fit, many do not (a flat cost per field would let all pass).
  expect((await t.gql(q(2))).body.errors).toBeUndefined();
  expect(codeOf((await t.gql(q(25))).body)).toBe("QUERY_TOO_COMPLEX");
});

test("a response over MAX_RESPONSE_BYTES is replaced by RESPONSE_TOO_LARGE, and logged as such", async () => {
  const token = await t.token("bulk", [Role.USER]);
  const r = await t.gql(
    `{ quotes(first: 1000) { nodes { id symbol eventTime seq price size bid bidSize ask askSize exchange delayed } } }`,
    {
      token,
    },
  );
  expect(r.body.data).toBeUndefined();
  expect(codeOf(r.body)).toBe("RESPONSE_TOO_LARGE");
  const ws = t.ws({ connectionParams: { authorization: `Bearer ${token}` } });
  const overWs = await wsQuery(
    ws,
    `{ quotes(first: 1000) { nodes { id symbol eventTime seq price size bid bidSize ask askSize exchange delayed } } }`,
  );
  expect(overWs.errors?.[0].extensions?.code).toBe("RESPONSE_TOO_LARGE");
  const steward = await t.token("stel", [Role.STEWARD]);
  const log = await t.gql(`{ accessLog(first: 5, filter: { principal: "bulk" }) { nodes { errorCode } } }`, {
    token: steward,
  });
  expect(log.body.data.accessLog.nodes.map((n: { errorCode: string }) => n.errorCode)).toContain(
    "RESPONSE_TOO_LARGE",
  );
});

/** Opens `n` raw graphql-transport-ws connections for `token`, acknowledged. */
async function connections(n: number, token: string) {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const ws = new WebSocket(t.wsUrl, "graphql-transport-ws");
      const inbox: { id?: string; type: string; payload?: { extensions?: { code?: string } }[] }[] = [];
      ws.on("message", (m) => inbox.push(JSON.parse(String(m))));
      await new Promise((r) => ws.once("open", r));
      ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
      await until("ack", () => inbox.some((m) => m.type === "connection_ack"));
      return { ws, inbox };
    }),
  );
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(t.url.replace("/graphql", "/metrics"))).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

test("a burst of 300 subscribes against a cap of 200 leaves exactly 200 running, 100 refused", async () => {
  const token = await t.token("lu", [Role.USER]);
  const conns = await connections(10, token);
  const before = await metric("tickgraph_subscribers");
  // Every message in one burst, before any answer: the cap must count what it has not finished yet.
  conns.forEach(({ ws }, c) => {
    for (let k = 0; k < 30; k++) {
      const query = `subscription Tick${c}_${k} { quoteTicks(symbols: ["S001"]) { price } }`;
      ws.send(JSON.stringify({ type: "subscribe", id: `${c}-${k}`, payload: { query } }));
    }
  });
  const refused = () => conns.flatMap((c) => c.inbox).filter((m) => m.type === "error");
  await until("100 refusals", () => refused().length >= 100);
  await until("200 running", async () => (await metric("tickgraph_subscribers")) - before === 200);
  expect(refused().length).toBe(100);
  expect(new Set(refused().map((m) => m.payload?.[0].extensions?.code))).toEqual(new Set(["RATE_LIMITED"]));
  // 200 differently named operations, one execution: they share one stream.
  for (const { ws } of conns) ws.close();
  await until("all freed", async () => (await metric("tickgraph_subscribers")) === before);
  // Freed places are free: a new burst of 200 all run.
  const again = await connections(4, token);
  again.forEach(({ ws }, c) => {
    for (let k = 0; k < 50; k++) {
      const query = `subscription { quoteTicks(symbols: ["S002"]) { price } }`;
      ws.send(JSON.stringify({ type: "subscribe", id: `${c}-${k}`, payload: { query } }));
    }
  });
  await until("200 running again", async () => (await metric("tickgraph_subscribers")) - before === 200);
  expect(again.flatMap((c) => c.inbox).filter((m) => m.type === "error")).toEqual([]);
  for (const { ws } of again) ws.close();
  await until("all freed again", async () => (await metric("tickgraph_subscribers")) === before);
});

test("operations that differ only in name share one stream; a principal's subscriptions have a cost budget", async () => {
  const token = await t.token("lu", [Role.USER]);
  const [c] = await connections(1, token);
  const streams = await metric("tickgraph_subscription_streams");
  for (let k = 0; k < 40; k++) {
    const query = `subscription Named${k} {  quoteTicks( symbols: ["S003"] ) { price   size } }`;
    c.ws.send(JSON.stringify({ type: "subscribe", id: `n${k}`, payload: { query } }));
  }
  await until("40 subscribers", async () => (await metric("tickgraph_subscribers")) >= 40);
  expect((await metric("tickgraph_subscription_streams")) - streams).toBe(1);
  // 300 symbols × 5 fields per event, with the 40 running, is over the budget of 1500: refused.
  const wide = `subscription($s: [String!]!) { quoteTicks(symbols: $s) { price size symbol eventTime exchange } }`;
  c.ws.send(
    JSON.stringify({ type: "subscribe", id: "wide", payload: { query: wide, variables: { s: SYMBOLS } } }),
  );
  await until("the refusal", () => c.inbox.some((m) => m.id === "wide" && m.type === "error"));
  const refusal = c.inbox.find((m) => m.id === "wide")!;
  expect(refusal.payload?.[0].extensions?.code).toBe("RATE_LIMITED");
  c.ws.close();
});
