import { createHash } from "node:crypto";
import type { Client as WsClient } from "graphql-ws";
import { Client } from "pg";
import { Role } from "../../src/policy/principal";
import { seedQuotes } from "../support/seed";
import { startTestPlatform, wsQuery, type TestPlatform } from "../support/server";
import { record, type Recording } from "../support/subscriptions";
import { until } from "../support/wait";

let t: TestPlatform;
let steward: string;
let pg: Client;

beforeAll(async () => {
  t = await startTestPlatform({}, {}, (url) => seedQuotes(url, { symbols: ["AAPL", "MSFT"], perSymbol: 10 }));
  steward = await t.token("sasha", [Role.STEWARD]);
  pg = new Client({ connectionString: t.databaseUrl });
  await pg.connect();
});
afterAll(async () => {
  await pg.end();
  await t.close();
});

type Entry = Record<string, unknown> & { seq: number; principal: string | null };
const ENTRY = `seq at principal roles client ip operation operationName operationHash phase allowed masked denied
  symbols delayed decision errorCode rowCount durationMs prevHash hash`;

async function log(filter: Record<string, unknown>, first = 50): Promise<Entry[]> {
  const { body } = await t.gql(
    `query($f: AccessLogFilter, $n: Int) { accessLog(filter: $f, first: $n) { nodes { ${ENTRY} } } }`,
    { token: steward, variables: { f: filter, n: first } },
  );
  expect(body.errors).toBeUndefined();
  return body.data.accessLog.nodes;
}

/** POSTs with a client name header, as Apollo clients send it. */
async function post(query: string, token: string | null, operationName?: string) {
  const res = await fetch(t.url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "apollographql-client-name": "notebook",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, operationName }),
  });
  return {
    status: res.status,
    body: (await res.json()) as { data?: unknown; errors?: { extensions?: { code?: string } }[] },
  };
}

describe("one entry per operation", () => {
  test("an allowed query: who, what, which fields and symbols, how many rows", async () => {
    const token = await t.token("ada");
    const query = `query Prices { quotes(symbols: ["MSFT"], first: 3) { nodes { symbol price } } }`;
    const { body } = await post(query, token, "Prices");
    expect(body.errors).toBeUndefined();
    const [e] = await log({ principal: "ada" });
    expect(e).toMatchObject({
      principal: "ada",
      roles: ["USER"],
      client: "notebook",
      ip: expect.stringMatching(/127\.0\.0\.1/),
      operation: "QUERY",
      operationName: "Prices",
      operationHash: createHash("sha256").update(query).digest("hex"),
      phase: null,
      allowed: ["Query.quotes", "Quote.price", "Quote.symbol", "QuoteConnection.nodes"],
      masked: [],
      denied: [],
      symbols: ["MSFT"],
      delayed: true,
      decision: "ALLOWED",
      errorCode: null,
      rowCount: 3,
      durationMs: expect.any(Number),
    });
  });

  test("masked and denied fields make it PARTIAL; symbols come from returned rows too", async () => {
    const token = await t.token("bea");
    await t.gql(`{ latestQuotes { symbol bid source } }`, { token });
    const [e] = await log({ principal: "bea" });
    expect(e).toMatchObject({
      masked: ["Quote.bid"],
      denied: ["Quote.source"],
      symbols: ["AAPL", "MSFT"],
      decision: "PARTIAL",
      errorCode: "FORBIDDEN",
      rowCount: 2,
    });
  });

  test("a query refused by policy alone is DENIED", async () => {
    const token = await t.token("cid");
    await t.gql(`{ accessLog { nodes { id } } }`, { token });
    const [e] = await log({ principal: "cid" });
    expect(e).toMatchObject({
      decision: "DENIED",
      denied: ["Query.accessLog"],
      errorCode: "FORBIDDEN",
      rowCount: 0,
    });
  });

  test("a forged token is logged without a principal, DENIED", async () => {
    const before = (await log({}, 1))[0].seq;
    const { status } = await post(
      `query Steal { accessLog { nodes { hash } } }`,
      "forged.token.here",
      "Steal",
    );
    expect(status).toBe(401);
    // A refusal is logged once its response is sent.
    const entries = await until("the refusal's entry", async () => {
      const found = (await log({ decision: "DENIED" })).filter((x) => x.seq > before && x.principal === null);
      return found.length ? found : undefined;
    });
    expect(entries).toEqual([
      expect.objectContaining({
        principal: null,
        operationName: "Steal",
        errorCode: "UNAUTHENTICATED",
        roles: [],
      }),
    ]);
  });

  test("WebSocket operations are logged too, refused ones included", async () => {
    const token = await t.token("dee");
    const client = t.ws({ connectionParams: { authorization: `Bearer ${token}` } });
    const r = await wsQuery(client, `query W { me { id } }`);
    expect(r.errors).toBeUndefined();
    const bad = await wsQuery(client, `query Bad { nope }`);
    expect(bad.errors?.[0].extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
    const [refused, ok] = await log({ principal: "dee" });
    expect(ok).toMatchObject({ operation: "QUERY", operationName: "W", decision: "ALLOWED", rowCount: 1 });
    expect(refused).toMatchObject({
      operationName: "Bad",
      decision: "DENIED",
      errorCode: "GRAPHQL_VALIDATION_FAILED",
      allowed: [],
    });
  });

  test("filters: by decision, by coordinate, by time, with cursor pages", async () => {
    const denied = await log({ decision: "DENIED" });
    expect(denied.length).toBeGreaterThan(0);
    expect(denied.every((e) => e.decision === "DENIED")).toBe(true);
    const bid = await log({ coordinate: "Quote.bid" });
    expect(bid.map((e) => e.principal)).toContain("bea");
    expect(
      bid.every((e) => [e.allowed, e.masked, e.denied].some((l) => (l as string[]).includes("Quote.bid"))),
    ).toBe(true);
    expect(await log({ from: "2100-01-01T00:00:00Z" })).toEqual([]);

    const all = await log({}, 1000);
    const seen: number[] = [];
    let after: string | null = null;
    do {
      const { body } = await t.gql(
        `query($a: String) { accessLog(first: 4, after: $a) { nodes { seq } pageInfo { hasNextPage endCursor } } }`,
        { token: steward, variables: { a: after } },
      );
      const page = body.data.accessLog as {
        nodes: { seq: number }[];
        pageInfo: { hasNextPage: boolean; endCursor: string };
      };
      seen.push(...page.nodes.map((n) => n.seq));
      after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    } while (after);
    // Newest first, every entry once: the pages hold what `all` held, plus the entry of that query itself.
    expect(seen).toEqual([all[0].seq + 1, ...all.map((e) => e.seq)]);
    expect([...seen].sort((a, b) => b - a)).toEqual(seen);
  });
});

describe("the chain", () => {
  test("seq rises by one and each entry's prevHash is its predecessor's hash", async () => {
    const entries = (await log({}, 1000)).reverse();
    expect(entries.length).toBeGreaterThan(5);
    entries.forEach((e, i) => {
      if (i === 0) return;
      expect(e.seq).toBe(entries[i - 1].seq + 1);
      expect(e.prevHash).toBe(entries[i - 1].hash);
    });
    const { body } = await t.gql(`{ verifyAccessLog { ok checked firstBrokenSeq } }`, { token: steward });
    expect(body.data.verifyAccessLog).toEqual({
      ok: true,
      checked: expect.any(Number),
      firstBrokenSeq: null,
    });
    expect(body.data.verifyAccessLog.checked).toBeGreaterThanOrEqual(entries.length);
  });

  test.each([
    ["UPDATE", "UPDATE access_log SET principal = 'nobody' WHERE seq = 1"],
    ["DELETE", "DELETE FROM access_log WHERE seq = 1"],
    ["TRUNCATE", "TRUNCATE access_log"],
  ])("the database refuses %s", async (_op, sql) => {
    await expect(pg.query(sql)).rejects.toThrow(/append-only/);
    const { rows } = await pg.query("SELECT principal FROM access_log WHERE seq = 1");
    expect(rows).toHaveLength(1);
  });
});

describe("accessEvents", () => {
  function collect(client: WsClient, query: string) {
    const events: { data?: { accessEvents: Entry } }[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const stop = client.subscribe(
      { query },
      { next: (e) => void events.push(e as never), error: done, complete: done },
    );
    return { events, stop, finished };
  }

  test("a steward receives each new entry; the subscription logs its START and its END with events delivered", async () => {
    const client = t.ws({ connectionParams: { authorization: `Bearer ${steward}` } });
    const sub = collect(
      client,
      `subscription Watch { accessEvents { principal operationName decision phase } }`,
    );
    const eli = () =>
      sub.events.filter((e) => e.data?.accessEvents.principal === "eli").map((e) => e.data!.accessEvents);
    const token = await t.token("eli");
    // Live once an entry of another principal's operation arrives.
    await until("the subscription live", async () => {
      await t.gql(`query Ping { me { id } }`, { token });
      return eli().length ? true : undefined;
    });
    await t.gql(`query One { me { id } }`, { token });
    await t.gql(`query Two { accessLog { nodes { id } } }`, { token });
    const ops = () => eli().filter((e) => e.operationName !== "Ping");
    await until("both entries", () => (ops().length >= 2 ? true : undefined));
    expect(ops()).toEqual([
      { principal: "eli", operationName: "One", decision: "ALLOWED", phase: null },
      { principal: "eli", operationName: "Two", decision: "DENIED", phase: null },
    ]);
    const delivered = sub.events.length;
    sub.stop();
    const end = await until("the subscription's END entry", async () =>
      (await log({ principal: "sasha" }, 20)).find((e) => e.operationName === "Watch" && e.phase === "END"),
    );
    expect(end).toMatchObject({ operation: "SUBSCRIPTION", decision: "ALLOWED", rowCount: delivered });
    const start = (await log({ principal: "sasha" }, 50)).find(
      (e) => e.operationName === "Watch" && e.phase === "START",
    );
    expect(start).toMatchObject({ operation: "SUBSCRIPTION", rowCount: null });
  });
});

describe("run-time classification", () => {
  test("classifyField by a steward applies at once, to HTTP and WebSocket, and is logged", async () => {
    const user = await t.token("fay");
    const q = `{ instrument(symbol: "AAPL") { symbol sector } }`;
    expect((await t.gql(q, { token: user })).body.data.instrument.sector).toBe("Technology");

    const { body } = await t.gql(
      `mutation { classifyField(coordinate: "Instrument.sector", level: CONFIDENTIAL) { coordinate level updatedBy } }`,
      { token: steward },
    );
    expect(body.data.classifyField).toEqual({
      coordinate: "Instrument.sector",
      level: "CONFIDENTIAL",
      updatedBy: "sasha",
    });

    const denied = await t.gql(q, { token: user });
    expect(denied.body.data.instrument).toEqual({ symbol: "AAPL", sector: null });
    expect(denied.body.errors?.[0].extensions).toMatchObject({
      code: "FORBIDDEN",
      coordinate: "Instrument.sector",
    });
    const ws = await wsQuery(t.ws({ connectionParams: { authorization: `Bearer ${user}` } }), q);
    expect(ws.errors?.[0].extensions?.coordinate).toBe("Instrument.sector");
    // A custodian may read CONFIDENTIAL.
    expect(
      (await t.gql(q, { token: await t.token("cole", [Role.CUSTODIAN]) })).body.data.instrument.sector,
    ).toBe("Technology");

    const policies = await t.gql(`{ fieldPolicies { coordinate level updatedBy } }`, { token: user });
    expect(policies.body.data.fieldPolicies).toContainEqual({
      coordinate: "Instrument.sector",
      level: "CONFIDENTIAL",
      updatedBy: "sasha",
    });
    expect(policies.body.data.fieldPolicies).toContainEqual({
      coordinate: "Quote.source",
      level: "CONFIDENTIAL",
      updatedBy: null,
    });
    expect(policies.body.data.fieldPolicies).toContainEqual({
      coordinate: "AccessLogEntry.ip",
      level: "RESTRICTED",
      updatedBy: null,
    });

    const [entry] = (await log({ coordinate: "Mutation.classifyField" })).filter(
      (e) => e.principal === "sasha",
    );
    expect(entry.decision).toBe("ALLOWED");

    await t.gql(`mutation { classifyField(coordinate: "Instrument.sector", level: PUBLIC) { level } }`, {
      token: steward,
    });
    expect((await t.gql(q, { token: user })).body.data.instrument.sector).toBe("Technology");
  });

  test("a type's level still bounds its fields: lowering AccessLogEntry.ip leaves it RESTRICTED", async () => {
    const { body } = await t.gql(
      `mutation { classifyField(coordinate: "AccessLogEntry.ip", level: PUBLIC) { level } }`,
      {
        token: steward,
      },
    );
    expect(body.data.classifyField.level).toBe("RESTRICTED");
  });

  test("only stewards classify; an unknown coordinate is BAD_USER_INPUT", async () => {
    const owner = await t.token("opal", [Role.OWNER]);
    const byOwner = await t.gql(
      `mutation { classifyField(coordinate: "Quote.price", level: RESTRICTED) { level } }`,
      {
        token: owner,
      },
    );
    expect(byOwner.body.errors?.[0].extensions?.code).toBe("FORBIDDEN");
    const byUser = await t.gql(
      `mutation { classifyField(coordinate: "Quote.price", level: PUBLIC) { level } }`,
    );
    expect(byUser.body.errors?.[0].extensions?.code).toBe("FORBIDDEN");
    const unknown = await t.gql(
      `mutation { classifyField(coordinate: "Quote.nope", level: PUBLIC) { level } }`,
      {
        token: steward,
      },
    );
    expect(unknown.body.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
    expect(unknown.body.errors?.[0].message).toMatch(/Quote\.nope/);
  });
});

describe("fail closed", () => {
  test("when the access log cannot be written, the response is withheld with AUDIT_UNAVAILABLE", async () => {
    const token = await t.token("gus");
    await pg.query("ALTER TABLE access_log RENAME TO access_log_away");
    try {
      const http = await post(`{ quotes(first: 1) { nodes { price } } }`, token);
      expect(http.status).toBe(503);
      expect(http.body.data).toBeUndefined();
      expect(http.body.errors).toEqual([
        {
          message: expect.stringMatching(/access log could not be written.*withheld/i),
          extensions: { code: "AUDIT_UNAVAILABLE" },
        },
      ]);
      const ws = await wsQuery(
        t.ws({ connectionParams: { authorization: `Bearer ${token}` } }),
        `{ me { id } }`,
      );
      expect(ws.data).toBeUndefined();
      expect(ws.errors?.[0].extensions?.code).toBe("AUDIT_UNAVAILABLE");
    } finally {
      await pg.query("ALTER TABLE access_log_away RENAME TO access_log");
    }
    const again = await post(`{ me { id } }`, token);
    expect(again.body.errors).toBeUndefined();
    const { body } = await t.gql(`{ verifyAccessLog { ok } }`, { token: steward });
    expect(body.data.verifyAccessLog.ok).toBe(true);
  });
});

describe("fail closed for subscriptions", () => {
  test("a subscription whose START entry cannot be written is refused with AUDIT_UNAVAILABLE and sent nothing", async () => {
    const watcher = t.ws({ connectionParams: { authorization: `Bearer ${steward}` } });
    // Every access-log write fails inside Postgres, as a full disk or a broken table would make it.
    await pg.query(`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
                      BEGIN RAISE EXCEPTION 'the access log refuses writes'; END $$;
                    CREATE TRIGGER refuse_audit BEFORE INSERT ON access_log
                      FOR EACH ROW EXECUTE FUNCTION refuse_audit();`);
    let refused: Recording<{ accessEvents: { operationName: string } }>;
    try {
      refused = record(watcher, `subscription Refused { accessEvents { operationName } }`);
      await until("the refusal", () => (refused.ended ? true : undefined));
    } finally {
      await pg.query(`DROP TRIGGER refuse_audit ON access_log; DROP FUNCTION refuse_audit()`);
    }
    expect(refused.events).toEqual([]);
    expect(refused.errors).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(/access log could not be written.*withheld/i),
        extensions: { code: "AUDIT_UNAVAILABLE" },
      }),
    ]);

    // Once the log takes writes again, a new subscription gets entries; the refused one got none of them.
    const healthy = record<{ accessEvents: { operationName: string } }>(
      watcher,
      `subscription Healthy { accessEvents { operationName } }`,
    );
    const user = await t.token("hugo");
    await until("the healthy subscription live", async () => {
      await t.gql(`query Later { me { id } }`, { token: user });
      return healthy.events.some((e) => e.data.accessEvents.operationName === "Later") ? true : undefined;
    });
    expect(refused.events).toEqual([]);
    expect(healthy.errors).toEqual([]);
    // The refused subscription left no START (nor END) entry; the healthy one did.
    const starts = (await log({ principal: "sasha" }, 100)).filter((e) => e.phase === "START");
    expect(starts.map((e) => e.operationName)).toContain("Healthy");
    expect(starts.map((e) => e.operationName)).not.toContain("Refused");
    healthy.stop();
  });
});
