import { Client } from "pg";
import WebSocket from "ws";
import { Role } from "../../src/policy/principal";
import { startTestPlatform, type TestPlatform } from "../support/server";

// No client can poison the access log: whatever bytes it sends are stored (escaped where Postgres
// would refuse them), and an entry Postgres refuses for any reason fails alone, never the other
// entries of its group commit. Failing closed stays: an entry that cannot be written withholds its
// own response.
let t: TestPlatform;
let pg: Client;
let steward: string;

beforeAll(async () => {
  t = await startTestPlatform();
  pg = new Client({ connectionString: t.databaseUrl });
  await pg.connect();
  steward = await t.token("stu", [Role.STEWARD]);
});
afterAll(async () => {
  await pg.end();
  await t.close();
});

const POISON = ["\u0000", "a\u0000b", "\ud800", "x\udfff", "\udc00\ud800", "\u0000\ud83d"];

async function send(body: string, opts: { token?: string | null; headers?: Record<string, string> } = {}) {
  const res = await fetch(t.url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...opts.headers,
    },
    body,
  });
  return {
    status: res.status,
    body: (await res.json()) as { data?: unknown; errors?: { extensions?: { code?: string } }[] },
  };
}

test("poisoned operation names, symbols and headers beside 200 honest queries: every response served", async () => {
  const honest = await t.token("hana", [Role.USER]);
  const pia = await t.token("pia", [Role.USER]);
  const before = Number((await pg.query("SELECT count(*) FROM access_log")).rows[0].count);
  const requests: Promise<{
    status: number;
    body: { data?: unknown; errors?: { extensions?: { code?: string } }[] };
  }>[] = [];
  for (let k = 0; k < 200; k++) {
    // JSON.stringify writes lone surrogates as \ud800 escapes: the server's JSON parser restores them.
    const poison = POISON[k % POISON.length];
    // The unknown operation names come from a principal of their own, and a few anonymously.
    requests.push(
      send(JSON.stringify({ query: `query Q { me { id } }`, operationName: poison }), {
        token: k % 10 === 0 ? null : pia,
      }),
    );
    requests.push(
      send(
        JSON.stringify({
          query: `query($s: [String!]) { quotes(symbols: $s, first: 1) { nodes { id } } }`,
          variables: { s: [poison] },
        }),
        {
          token: honest,
          headers: { "user-agent": `agent-${k}-\u00ff\u00fe` },
        },
      ),
    );
    requests.push(send(JSON.stringify({ query: `query Honest${k} { me { id } }` }), { token: honest }));
  }
  const results = await Promise.all(requests);
  for (let k = 0; k < results.length; k += 3) {
    const poison = POISON[(k / 3) % POISON.length];
    // An unknown operation name, or no token: refused as such (and logged), never withheld.
    expect(results[k].body.errors?.[0].extensions?.code).toBe(
      (k / 3) % 10 === 0 ? "UNAUTHENTICATED" : "OPERATION_RESOLUTION_FAILURE",
    );
    // A symbol Postgres could not even be asked about (NUL) is refused; any other is looked up.
    if (poison.includes("\u0000"))
      expect(results[k + 1].body.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
    else expect(results[k + 1].body).toEqual({ data: { quotes: { nodes: [] } } });
    expect(results[k + 2]).toEqual({ status: 200, body: { data: { me: { id: "hana" } } } });
  }
  const after = Number((await pg.query("SELECT count(*) FROM access_log")).rows[0].count);
  // Every honest operation has its entry (the anonymous ones may be aggregated).
  expect(after - before).toBeGreaterThanOrEqual(400);
  const { rows } = await pg.query(
    `SELECT symbols FROM access_log WHERE principal = 'hana' AND symbols <> '{}' ORDER BY seq LIMIT 6`,
  );
  expect(new Set(rows.map((r) => r.symbols[0]))).toEqual(new Set(["\\ud800", "x\\udfff", "\\udc00\\ud800"]));
  const names = await pg.query(`SELECT DISTINCT operation_name FROM access_log WHERE principal = 'pia'`);
  expect(names.rows.map((r) => r.operation_name)).toEqual(
    expect.arrayContaining([
      "\\u0000",
      "a\\u0000b",
      "\\ud800",
      "x\\udfff",
      "\\udc00\\ud800",
      "\\u0000\\ud83d",
    ]),
  );
  const verified = await t.gql(`{ verifyAccessLog { ok } }`, { token: steward });
  expect(verified.body.data.verifyAccessLog.ok).toBe(true);
});

test("poisoned bytes over WebSocket are logged escaped and the connection serves on", async () => {
  const token = await t.token("wren", [Role.USER]);
  const ws = new WebSocket(t.wsUrl, "graphql-transport-ws", { headers: { "user-agent": "ws\u00ff" } });
  const messages: { type: string; id?: string }[] = [];
  const next = () =>
    new Promise<void>((resolve) =>
      ws.once("message", (m) => resolve(void messages.push(JSON.parse(String(m))))),
    );
  await new Promise((r) => ws.once("open", r));
  ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
  await next();
  ws.send(
    JSON.stringify({
      type: "subscribe",
      id: "p",
      payload: { query: `query P { me { id } }`, operationName: "\u0000\ud800" },
    }),
  );
  await next();
  ws.send(JSON.stringify({ type: "subscribe", id: "q", payload: { query: `{ me { id } }` } }));
  while (!messages.some((m) => m.id === "q" && m.type === "next")) await next();
  ws.close();
  const { rows } = await pg.query(
    `SELECT operation_name FROM access_log WHERE principal = 'wren' ORDER BY seq`,
  );
  expect(rows.map((r) => r.operation_name)).toContain("\\u0000\\ud800");
});

test("an entry Postgres refuses fails alone; the others of its group commit are written", async () => {
  // Any reason will do: here a constraint refuses one operation name.
  await pg.query(
    `ALTER TABLE access_log ADD CONSTRAINT refuse_one CHECK (operation_name IS DISTINCT FROM 'Refused')`,
  );
  try {
    const token = await t.token("ivy", [Role.USER]);
    const all = await Promise.all(
      Array.from({ length: 60 }, (_, k) =>
        t.gql(k === 17 ? `query Refused { me { id } }` : `query Fine${k} { me { id } }`, { token }),
      ),
    );
    all.forEach((r, k) => {
      if (k === 17)
        expect([r.status, r.body.errors?.[0].extensions?.code]).toEqual([503, "AUDIT_UNAVAILABLE"]);
      else expect(r.body).toEqual({ data: { me: { id: "ivy" } } });
    });
    const { rows } = await pg.query(
      `SELECT count(*)::int AS n FROM access_log WHERE principal = 'ivy' AND operation_name LIKE 'Fine%'`,
    );
    expect(rows[0].n).toBe(59);
  } finally {
    await pg.query(`ALTER TABLE access_log DROP CONSTRAINT refuse_one`);
  }
});

test("when the log cannot be written at all, every response is withheld", async () => {
  await pg.query(`REVOKE INSERT ON access_log FROM PUBLIC`);
  await pg.query(
    `CREATE FUNCTION refuse_all() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'log down'; END $$`,
  );
  await pg.query(
    `CREATE TRIGGER refuse_all BEFORE INSERT ON access_log FOR EACH ROW EXECUTE FUNCTION refuse_all()`,
  );
  try {
    const token = await t.token("olga", [Role.USER]);
    const all = await Promise.all(Array.from({ length: 8 }, () => t.gql(`{ me { id } }`, { token })));
    for (const r of all) {
      expect(r.status).toBe(503);
      expect(r.body.data).toBeUndefined();
      expect(r.body.errors?.[0].extensions?.code).toBe("AUDIT_UNAVAILABLE");
    }
  } finally {
    await pg.query(`DROP TRIGGER refuse_all ON access_log`);
    await pg.query(`DROP FUNCTION refuse_all()`);
  }
});
