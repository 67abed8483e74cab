import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { buildSchema } from "graphql";
import { Client } from "pg";
import WebSocket, { WebSocketServer } from "ws";
import { Role } from "../../src/policy/principal";
import { serveGraphqlWs, type ServerClose } from "../../src/server/ws";
import { startTestPlatform, type TestPlatform } from "../support/server";
import { until } from "../support/wait";

// Every refusal is one access-log entry: HTTP requests refused around GraphQL (method, body, CSRF
// prevention, batch size, parameters) and WebSocket connections the server closes. Refusals of callers
// without a valid token are logged too, aggregated so that they cannot flood the log.
let t: TestPlatform;
let pg: Client;
const MAX_BYTES = 8192;

beforeAll(async () => {
  t = await startTestPlatform({ MAX_REQUEST_BYTES: String(MAX_BYTES), MAX_CONNECTIONS_PER_PRINCIPAL: "1" });
  pg = new Client({ connectionString: t.databaseUrl });
  await pg.connect();
});
afterAll(async () => {
  await pg.end();
  await t.close();
});

interface Row {
  seq: string;
  principal: string | null;
  operation: string;
  decision: string;
  error_code: string;
  occurrences: number | null;
}
const entriesOf = async (principal: string): Promise<Row[]> =>
  (await pg.query(`SELECT * FROM access_log WHERE principal = $1 ORDER BY seq`, [principal])).rows;

async function http(
  init: RequestInit & { headers?: Record<string, string> },
  token?: string,
  path = "",
): Promise<number> {
  const res = await fetch(t.url + path, {
    ...init,
    headers: { ...init.headers, ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  await res.arrayBuffer();
  return res.status;
}

const JSON_BODY = { "content-type": "application/json" };
const refusedByHttp: [string, RequestInit & { headers?: Record<string, string> }, string, number, string][] =
  [
    [
      "a batch over MAX_BATCH_SIZE",
      {
        method: "POST",
        headers: JSON_BODY,
        body: JSON.stringify(Array(11).fill({ query: "{ me { id } }" })),
      },
      "",
      400,
      "BAD_REQUEST",
    ],
    [
      "a mutation by GET",
      { method: "GET" },
      `?query=${encodeURIComponent('mutation { requestAccess(entitlement: DEPTH, reason: "x") { id } }')}`,
      405,
      "BAD_REQUEST",
    ],
    ["malformed JSON", { method: "POST", headers: JSON_BODY, body: `{"query":` }, "", 400, "BAD_REQUEST"],
    [
      "a body over the limit",
      { method: "POST", headers: JSON_BODY, body: `"${"x".repeat(MAX_BYTES)}"` },
      "",
      413,
      "BAD_REQUEST",
    ],
    [
      "an unknown charset",
      { method: "POST", headers: { "content-type": "application/json; charset=koi8-r" }, body: "{}" },
      "",
      415,
      "BAD_REQUEST",
    ],
    [
      "a non-string query",
      { method: "POST", headers: JSON_BODY, body: `{"query":5}` },
      "",
      400,
      "BAD_REQUEST",
    ],
    [
      "a wrong method",
      { method: "PUT", headers: JSON_BODY, body: `{"query":"{ me { id } }"}` },
      "",
      405,
      "BAD_REQUEST",
    ],
  ];

test.each(refusedByHttp)(
  "%s, sent with a token, is one DENIED entry of its principal",
  async (what, init, path, status, code) => {
    const who = `http-${what.replace(/\W+/g, "-")}`;
    const token = await t.token(who, [Role.USER]);
    expect(await http(init, token, path)).toBe(status);
    const [entry, ...more] = await until(`${what}'s entry`, async () => {
      const rows = await entriesOf(who);
      return rows.length ? rows : undefined;
    });
    expect(more).toEqual([]);
    expect(entry).toMatchObject({
      principal: who,
      decision: "DENIED",
      error_code: code,
      operation: expect.any(String),
    });
  },
);

/** Speaks graphql-transport-ws by hand, so that a test can misbehave as no client library would. */
class RawWs {
  readonly ws: WebSocket;
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly inbox: unknown[] = [];

  constructor() {
    this.ws = new WebSocket(t.wsUrl, "graphql-transport-ws");
    this.ws.on("message", (m) => this.inbox.push(JSON.parse(String(m))));
    this.closed = new Promise((resolve) =>
      this.ws.once("close", (code, reason) => resolve({ code, reason: String(reason) })),
    );
  }
  opened = () => new Promise((resolve) => this.ws.once("open", resolve));
  send = (m: unknown) => this.ws.send(typeof m === "string" ? m : JSON.stringify(m));
  init = (token: string) =>
    this.send({ type: "connection_init", payload: { authorization: `Bearer ${token}` } });
  acked = () =>
    until("connection_ack", () => this.inbox.some((m) => (m as { type: string }).type === "connection_ack"));
}

test("WebSocket refusals are one entry each, with the close code: 4029, 4401, 4400, 4409, 1009 and an expired token", async () => {
  const who = "ws-refused";
  const token = await t.token(who, [Role.USER]);
  const closes: number[] = [];
  const expect4 = async (make: (ws: RawWs) => Promise<void> | void, code: number) => {
    const ws = new RawWs();
    await ws.opened();
    await make(ws);
    expect((await ws.closed).code).toBe(code);
    closes.push(code);
  };
  // Holding the one connection the cap allows, a second is refused with 4029.
  const held = new RawWs();
  await held.opened();
  held.init(token);
  await held.acked();
  await expect4((ws) => ws.init(token), 4029);
  held.ws.close();
  await held.closed;
  await expect4((ws) => ws.send({ type: "subscribe", id: "1", payload: { query: "{ me { id } }" } }), 4401);
  await expect4(async (ws) => {
    ws.init(token);
    await ws.acked();
    ws.send({ type: "bogus" });
  }, 4400);
  await expect4(async (ws) => {
    ws.init(token);
    await ws.acked();
    const query = `subscription { quoteTicks(symbols: ["AAPL"]) { price } }`;
    const sub = { type: "subscribe", id: "twice", payload: { query } };
    ws.send(sub);
    ws.send(sub);
  }, 4409);
  await expect4(async (ws) => {
    ws.init(token);
    await ws.acked();
    ws.send({ type: "subscribe", id: "big", payload: { query: `{ me { id } } #${"x".repeat(MAX_BYTES)}` } });
  }, 1009);
  const short = await t.token(who, [Role.USER], 2);
  await expect4(async (ws) => {
    ws.init(short);
    await ws.acked();
  }, 4403);
  const rows = await until("an entry per refused connection", async () => {
    const found = (await entriesOf(who)).filter((r) => r.error_code?.startsWith("CLOSE_"));
    return found.length >= closes.length - 1 ? found : undefined; // 4401 comes before any token is read
  });
  const codes = rows.map((r) => r.error_code).sort();
  expect(codes).toEqual(["CLOSE_1009", "CLOSE_4029", "CLOSE_4400", "CLOSE_4403", "CLOSE_4409"]);
  for (const r of rows) expect(r).toMatchObject({ decision: "DENIED", operation: "REQUEST" });
});

test("anonymous refusals are logged, aggregated per address and code", async () => {
  const before = Number((await pg.query(`SELECT coalesce(max(seq), 0) AS s FROM access_log`)).rows[0].s);
  for (let k = 0; k < 40; k++)
    expect(await http({ method: "POST", headers: JSON_BODY, body: `{"query":"{ me { id } }"}` })).toBe(401);
  const badToken = new RawWs();
  await badToken.opened();
  badToken.init("not-a-token");
  expect((await badToken.closed).code).toBe(4403);
  // The first of each (address, code) at once; the rest when the interval ends (at the latest, at stop).
  const first = await until("the first anonymous entries", async () => {
    const { rows } = await pg.query(
      `SELECT * FROM access_log WHERE seq > $1 AND principal IS NULL ORDER BY seq`,
      [before],
    );
    return rows.length >= 2 ? (rows as Row[]) : undefined;
  });
  expect(first.map((r) => [r.error_code, r.occurrences]).sort()).toEqual([
    ["CLOSE_4403", null],
    ["UNAUTHENTICATED", null],
  ]);
  // A subscribe before connection_init is refused (4401) before any token is read: anonymous too.
  const early = await pg.query(
    `SELECT 1 FROM access_log WHERE principal IS NULL AND error_code = 'CLOSE_4401'`,
  );
  expect(early.rowCount).toBeGreaterThan(0);
  await t.platform.close(); // a stop writes what the interval holds (the tests after this need no server)
  const { rows } = await pg.query(
    `SELECT error_code, occurrences FROM access_log WHERE seq > $1 AND principal IS NULL ORDER BY seq`,
    [before],
  );
  expect(rows).toEqual([
    { error_code: expect.any(String), occurrences: null },
    { error_code: expect.any(String), occurrences: null },
    { error_code: "UNAUTHENTICATED", occurrences: 39 },
  ]);
});

test("a hook that throws closes its connection with 4500, reported as a server close, its message never sent", async () => {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  const reported: ServerClose[] = [];
  const server = serveGraphqlWs(wss, {
    extra: (socket, request) => ({ socket, request }),
    onServerClose: (c) => reported.push(c),
    server: {
      schema: buildSchema(`type Query { ok: Boolean }`),
      onSubscribe: () => {
        throw new Error("secret internals");
      },
    },
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  const ws = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}`, "graphql-transport-ws");
  const closed = new Promise<{ code: number; reason: string }>((r) =>
    ws.once("close", (code, reason) => r({ code, reason: String(reason) })),
  );
  await new Promise((r) => ws.once("open", r));
  ws.send(JSON.stringify({ type: "connection_init" }));
  await new Promise((r) => ws.once("message", r));
  ws.send(JSON.stringify({ type: "subscribe", id: "x", payload: { query: "{ ok }" } }));
  const { code, reason } = await closed;
  expect(code).toBe(4500);
  expect(reason).toMatch(/^Internal server error \(id [0-9a-f-]+\)$/);
  await until("the reported close", () => reported.length === 1);
  expect(reported[0].code).toBe(4500);
  await server.dispose();
  await new Promise((r) => http.close(r));
});
