import { auditServer } from "graphql-http";
import { Client } from "pg";
import { Role } from "../../src/policy/principal";
import { seedQuotes } from "../support/seed";
import { startTestPlatform, wsQuery, type TestPlatform } from "../support/server";
import { until } from "../support/wait";

// GraphQL over HTTP as clients use it with their defaults: the spec audit, GET with a bearer token,
// introspection, the browser's view of the URL, CORS and batching.
const ORIGIN = "https://bi.example.com";
let t: TestPlatform;
let pg: Client;
let token: string;

beforeAll(async () => {
  t = await startTestPlatform(
    { CORS_ORIGINS: `${ORIGIN},http://localhost:8888`, MAX_BATCH_SIZE: "4", MAX_BATCH_COST: "5000" },
    {},
    (url) => seedQuotes(url, { symbols: ["AAPL", "MSFT"], perSymbol: 50 }),
  );
  token = await t.token("alice", [Role.USER]);
  pg = new Client({ connectionString: t.databaseUrl });
  await pg.connect();
});
afterAll(async () => {
  await pg.end();
  await t.close();
});

/** fetch with the bearer token (unless `null`) and the given headers. */
function http(
  url: string,
  init: RequestInit & { headers?: Record<string, string> } = {},
  bearer: string | null = token,
) {
  return fetch(url, {
    redirect: "manual",
    ...init,
    headers: { ...init.headers, ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
  });
}

const GQL_RESPONSE = "application/graphql-response+json";
const get = (query: string, accept = "application/json", bearer: string | null = token) =>
  http(`${t.url}?query=${encodeURIComponent(query)}`, { headers: { accept } }, bearer);
const post = (body: unknown, headers: Record<string, string> = {}, bearer: string | null = token) =>
  http(
    t.url,
    {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    },
    bearer,
  );

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
/** A response's JSON body, read loosely (the test asserts its shape). */
const json = async (res: Response): Promise<Json> => (await res.json()) as Json;

const entriesOf = async (principal: string) =>
  (await pg.query(`SELECT * FROM access_log WHERE principal = $1 ORDER BY seq`, [principal])).rows;

describe("the GraphQL-over-HTTP spec audit", () => {
  test("graphql-http's auditServer, with a bearer token: no error and no warning", async () => {
    const results = await auditServer({
      url: t.url,
      fetchFn: (input: string, init: RequestInit = {}) =>
        fetch(input, {
          ...init,
          headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` },
        }),
    });
    const problems = results.filter((r) => r.status === "error" || r.status === "warn");
    expect(problems.map((r) => `${r.id} ${r.name}: ${r.status === "ok" ? "" : r.reason}`)).toEqual([]);
    // GET requests, with variables too, are among what passes (they were refused by CSRF prevention).
    const get = results.filter((r) => ["5A70", "D6D5", "6A70"].includes(r.id));
    expect(get.map((r) => [r.id, r.status])).toEqual([
      ["5A70", "ok"],
      ["D6D5", "ok"],
      ["6A70", "ok"],
    ]);
  });
});

describe("GET", () => {
  test("a query by GET with a bearer token runs, under both media types", async () => {
    for (const accept of ["application/json", GQL_RESPONSE]) {
      const res = await get(`{ quotes(symbols: ["AAPL"], first: 2) { nodes { symbol } } }`, accept);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(accept);
      expect(await json(res)).toEqual({
        data: { quotes: { nodes: [{ symbol: "AAPL" }, { symbol: "AAPL" }] } },
      });
    }
  });

  test("a mutation by GET is 405 under both media types and does not run", async () => {
    const mutation = `mutation { requestAccess(entitlement: REALTIME, reason: "by GET") { id } }`;
    const who = await t.token("getter", [Role.USER]);
    for (const accept of ["application/json", GQL_RESPONSE]) {
      const res = await get(mutation, accept, who);
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("POST");
      const body = await json(res);
      expect(body.data).toBeUndefined();
      expect(body.errors[0].extensions.code).toBe("BAD_REQUEST");
    }
    const { rows } = await pg.query(`SELECT * FROM access_requests WHERE principal = 'getter'`);
    expect(rows).toEqual([]);
  });

  test("a GET without any preflight-forcing header is still refused (CSRF prevention)", async () => {
    const res = await get(`{ me { id } }`, "application/json", null);
    expect(res.status).toBe(400);
    expect((await json(res)).errors[0].message).toMatch(/Cross-Site Request Forgery/);
  });

  test("the GraphQL URL opened in a browser redirects to the explorer", async () => {
    const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    const res = await http(t.url, { headers: { accept: browser } }, null);
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("/explorer");
    // curl and GraphQL clients are not browsers: they get GraphQL's answer.
    const curl = await http(t.url, { headers: { accept: "*/*" } }, null);
    expect(curl.status).toBe(400);
    expect((await json(curl)).errors[0].extensions.code).toBe("BAD_REQUEST");
  });
});

describe("introspection", () => {
  const INTROSPECT = `{ __schema { queryType { name } } }`;

  test("is on by default for authenticated principals, over HTTP and WebSocket", async () => {
    const { body } = await t.gql(INTROSPECT);
    expect(body.data).toEqual({ __schema: { queryType: { name: "Query" } } });
    expect(await wsQuery(t.ws(), INTROSPECT)).toEqual({
      data: { __schema: { queryType: { name: "Query" } } },
    });
  });

  test("is never open to anonymous callers", async () => {
    const anonymous = await t.gql(INTROSPECT, { token: null });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.data).toBeUndefined();
    const byGet = await get(INTROSPECT, "application/json", null);
    expect(byGet.status).toBe(400); // refused before anything runs (no preflight-forcing header)
    const closed = await new Promise<number>((resolve) => {
      t.ws({ connectionParams: {}, on: { closed: (e) => resolve((e as { code: number }).code) } });
    });
    expect(closed).toBe(4403);
  });

  test("stays on under NODE_ENV=production (Apollo's default would turn it off)", async () => {
    const nodeEnv = process.env.NODE_ENV;
    process.env.NODE_ENV = "production";
    let prod: TestPlatform;
    try {
      prod = await startTestPlatform({ NODE_ENV: "production" });
    } finally {
      process.env.NODE_ENV = nodeEnv;
    }
    try {
      expect((await prod.gql(INTROSPECT)).body.data.__schema.queryType.name).toBe("Query");
    } finally {
      await prod.close();
    }
  });

  test("INTROSPECTION=off refuses it on both transports, __typename still answers", async () => {
    const off = await startTestPlatform({ INTROSPECTION: "off" });
    try {
      for (const q of [INTROSPECT, `{ __type(name: "Quote") { name } }`]) {
        const { status, body } = await off.gql(q);
        expect(status).toBe(200);
        expect(body.errors?.[0]).toMatchObject({
          message: expect.stringMatching(/INTROSPECTION=off/),
          extensions: { code: "GRAPHQL_VALIDATION_FAILED" },
        });
        const ws = await wsQuery(off.ws(), q);
        expect(ws.errors?.[0]).toMatchObject({
          message: expect.stringMatching(/INTROSPECTION=off/),
          extensions: { code: "GRAPHQL_VALIDATION_FAILED" },
        });
      }
      expect((await off.gql(`{ __typename }`)).body).toEqual({ data: { __typename: "Query" } });
    } finally {
      await off.close();
    }
  });
});

describe("CORS", () => {
  const preflight = (origin: string, path = "/graphql") =>
    fetch(t.url.replace("/graphql", path), {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
      },
    });

  test("a listed origin's preflight is answered for authorization and content-type, without a log entry", async () => {
    const before = (await pg.query(`SELECT count(*)::int AS n FROM access_log`)).rows[0].n;
    for (const path of ["/graphql", "/export/quotes.csv"]) {
      const res = await preflight(ORIGIN, path);
      expect(res.status).toBe(204);
      expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
      expect(res.headers.get("access-control-allow-methods")).toBe("GET,POST");
      expect(res.headers.get("access-control-allow-headers")?.split(",")).toEqual(
        expect.arrayContaining(["authorization", "content-type"]),
      );
    }
    const res = await post({ query: "{ me { id } }" }, { origin: ORIGIN });
    expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    expect(res.headers.get("vary")).toMatch(/Origin/);
    // The export's governance headers are readable by the origin's scripts.
    const exported = await http(t.url.replace("/graphql", "/export/quotes.csv?symbols=AAPL"), {
      headers: { origin: ORIGIN },
    });
    expect(exported.headers.get("access-control-expose-headers")).toMatch(/x-tickgraph-masked-columns/);
    await exported.arrayBuffer();
    // The POST and the export wrote theirs; the preflights none.
    await until("two entries", async () => {
      const n = (await pg.query(`SELECT count(*)::int AS n FROM access_log`)).rows[0].n;
      return n >= before + 2 ? n : undefined;
    });
    expect((await pg.query(`SELECT count(*)::int AS n FROM access_log`)).rows[0].n).toBe(before + 2);
  });

  test("another origin gets no CORS header, on its preflight or its request", async () => {
    const res = await preflight("https://evil.example.com");
    expect(res.status).toBe(405);
    expect([...res.headers.keys()].filter((h) => h.startsWith("access-control-"))).toEqual([]);
    const actual = await post({ query: "{ me { id } }" }, { origin: "https://evil.example.com" });
    expect([...actual.headers.keys()].filter((h) => h.startsWith("access-control-"))).toEqual([]);
  });
});

describe("batching", () => {
  test("each operation of a batch runs, is decided and logged on its own", async () => {
    const who = "batcher";
    const bearer = await t.token(who, [Role.USER]);
    const res = await post(
      [
        { query: `query Masked { quotes(symbols: ["AAPL"], first: 1) { nodes { bid } } }` },
        { query: `query Plain { me { id } }` },
        { query: `query TooBig { quotes(first: 1001) { nodes { id } } }` },
        { query: `query Broken { me { ` },
      ],
      {},
      bearer,
    );
    expect(res.status).toBe(200);
    const results = await json(res);
    expect(results).toHaveLength(4);
    expect(results[0]).toEqual({
      data: { quotes: { nodes: [{ bid: null }] } },
      extensions: { masked: ["Quote.bid"] },
    });
    expect(results[1]).toEqual({ data: { me: { id: who } } });
    expect(results[2].errors[0].extensions.code).toBe("BAD_USER_INPUT");
    expect(results[3].errors[0].extensions.code).toBe("GRAPHQL_PARSE_FAILED");
    const entries = await until("four entries", async () => {
      const rows = await entriesOf(who);
      return rows.length >= 4 ? rows : undefined;
    });
    expect(entries.map((e) => [e.operation_name, e.decision, e.error_code, e.masked])).toEqual([
      ["Masked", "PARTIAL", null, ["Quote.bid"]],
      ["Plain", "ALLOWED", null, []],
      ["TooBig", "DENIED", "BAD_USER_INPUT", []],
      [null, "DENIED", "GRAPHQL_PARSE_FAILED", []],
    ]);
  });

  test("an element that is not an operation is refused in its place, and logged", async () => {
    const who = "batcher-2";
    const bearer = await t.token(who, [Role.USER]);
    const res = await post([7, { query: "{ me { id } }" }], {}, bearer);
    const results = await json(res);
    expect(results[0].errors[0].extensions.code).toBe("BAD_REQUEST");
    expect(results[1]).toEqual({ data: { me: { id: who } } });
    const entries = await until("two entries", async () => {
      const rows = await entriesOf(who);
      return rows.length >= 2 ? rows : undefined;
    });
    expect(entries.map((e) => [e.operation, e.error_code])).toEqual([
      ["REQUEST", "BAD_REQUEST"],
      ["QUERY", null],
    ]);
  });

  test("the batch's total cost is bounded: the operation that would pass MAX_BATCH_COST is refused", async () => {
    // Each page costs 1 + 1000 × (nodes + id) = 2001: two fit in 5000, the third does not.
    const page = { query: `{ quotes(first: 1000) { nodes { id } } }` };
    const results = await json(await post([page, page, page]));
    expect(results[0].errors).toBeUndefined();
    expect(results[1].errors).toBeUndefined();
    expect(results[2].errors[0].extensions.code).toBe("QUERY_TOO_COMPLEX");
    expect(results[2].errors[0].message).toMatch(/MAX_BATCH_COST/);
    // Alone, the same operation is within the per-operation limit.
    expect((await json(await post(page))).errors).toBeUndefined();
  });

  test("a batch over MAX_BATCH_SIZE, or empty, is refused whole with one entry", async () => {
    const who = "batcher-3";
    const bearer = await t.token(who, [Role.USER]);
    const op = { query: "{ me { id } }" };
    for (const batch of [[op, op, op, op, op], []]) {
      const res = await post(batch, {}, bearer);
      expect(res.status).toBe(400);
      const body = await json(res);
      expect(body.errors[0]).toMatchObject({ extensions: { code: "BAD_REQUEST" } });
      expect(body.errors[0].message).toMatch(/1 to 4 operations \(MAX_BATCH_SIZE\)/);
    }
    const entries = await until("two entries", async () => {
      const rows = await entriesOf(who);
      return rows.length >= 2 ? rows : undefined;
    });
    expect(entries.map((e) => [e.operation, e.error_code])).toEqual([
      ["REQUEST", "BAD_REQUEST"],
      ["REQUEST", "BAD_REQUEST"],
    ]);
  });

  test("a batch without a valid token is 401", async () => {
    const res = await post([{ query: "{ me { id } }" }], {}, null);
    expect(res.status).toBe(401);
    expect((await json(res)).errors[0].extensions.code).toBe("UNAUTHENTICATED");
  });
});
