import { Role } from "../../src/policy/principal";
import { grantEntitlements } from "../support/governance";
import { seedQuotes } from "../support/seed";
import { startTestPlatform, wsQuery, type TestPlatform } from "../support/server";

// Every way a client might reach a protected field: the denial must hold on each of them.
let t: TestPlatform;
let user: string;
let custodian: string;
let steward: string;
const DEPTH_FIELDS = ["Quote.ask", "Quote.askSize", "Quote.bid", "Quote.bidSize"];

beforeAll(async () => {
  t = await startTestPlatform({}, {}, (url) => seedQuotes(url, { symbols: ["AAPL", "MSFT"], perSymbol: 20 }));
  user = await t.token("uma", [Role.USER]);
  custodian = await t.token("cato", [Role.CUSTODIAN]);
  steward = await t.token("stella", [Role.STEWARD]);
});
afterAll(() => t.close());

type Err = { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> };
const forbidden = (errors: Err[] | undefined) =>
  (errors ?? []).filter((e) => e.extensions?.code === "FORBIDDEN").map((e) => e.extensions?.coordinate);

describe("a CONFIDENTIAL field is denied to a USER on every path", () => {
  test.each([
    [
      "a plain selection",
      `{ quotes(first: 2) { nodes { symbol source } } }`,
      ["quotes", "nodes", 0, "source"],
    ],
    ["an alias", `{ q: quotes(first: 2) { nodes { symbol s: source } } }`, ["q", "nodes", 0, "s"]],
    [
      "a named fragment",
      `query { quotes(first: 2) { nodes { ...F } } } fragment F on Quote { symbol source }`,
      ["quotes", "nodes", 0, "source"],
    ],
    [
      "an inline fragment",
      `{ quotes(first: 2) { nodes { symbol ... on Quote { source } } } }`,
      ["quotes", "nodes", 0, "source"],
    ],
    [
      "a nested path",
      `{ instrument(symbol: "AAPL") { symbol latestQuote { symbol source } } }`,
      ["instrument", "latestQuote", "source"],
    ],
    [
      "a path back through the instrument",
      `{ quotes(first: 1) { nodes { instrument { latestQuote { source } } } } }`,
      ["quotes", "nodes", 0, "instrument", "latestQuote", "source"],
    ],
    [
      "introspection mixed in",
      `{ __schema { queryType { name } } __typename instrument(symbol: "AAPL") { __typename latestQuote { symbol source } } }`,
      ["instrument", "latestQuote", "source"],
    ],
  ])("%s", async (_name, query, path) => {
    const { body } = await t.gql(query, { token: user });
    expect(forbidden(body.errors)).toContain("Quote.source");
    const err = body.errors!.find((e) => e.extensions?.coordinate === "Quote.source")!;
    expect(err.message).toMatch(/Quote\.source/);
    expect(err.path).toEqual(path);
    // The denied value is null, and only it: its parent and siblings are served.
    let node = body.data;
    for (const key of path.slice(0, -1)) node = node[key];
    expect(node).not.toBeNull();
    expect(node[path[path.length - 1]]).toBeNull();
    if ("symbol" in node) expect(node.symbol).toMatch(/AAPL|MSFT/);
    if (query.includes("__schema")) expect(body.data.__schema.queryType.name).toBe("Query");
  });

  test("every row is checked, not only the first", async () => {
    const { body } = await t.gql(`{ quotes(first: 5) { nodes { receivedAt } } }`, { token: user });
    expect(body.data.quotes.nodes).toHaveLength(5);
    expect(body.data.quotes.nodes.every((n: { receivedAt: unknown }) => n.receivedAt === null)).toBe(true);
    expect(body.errors).toHaveLength(5);
  });

  test("a CUSTODIAN reads CONFIDENTIAL fields, a STEWARD too", async () => {
    for (const token of [custodian, steward]) {
      const { body } = await t.gql(`{ quotes(first: 1) { nodes { source receivedAt } } }`, { token });
      expect(body.errors).toBeUndefined();
      expect(body.data.quotes.nodes[0].source).toBe("feed");
    }
  });
});

describe("CONFIDENTIAL types (ingest internals, quarantine)", () => {
  test.each([
    ["Query.ingestStatus", `{ ingestStatus { state } }`],
    ["Query.quarantine", `{ quarantine(first: 5) { nodes { raw } } }`],
    [
      "Query.quarantine",
      `{ q: quarantine { ...Q } } fragment Q on QuarantineConnection { nodes { reason } }`,
    ],
  ])("%s is denied to a USER, served to a CUSTODIAN", async (coordinate, query) => {
    const asUser = await t.gql(query, { token: user });
    expect(forbidden(asUser.body.errors)).toEqual([coordinate]);
    const asCustodian = await t.gql(query, { token: custodian });
    expect(asCustodian.body.errors).toBeUndefined();
  });
});

describe("RESTRICTED data (access log, grants, holders)", () => {
  test.each([
    ["Query.accessLog", `{ accessLog { nodes { id } } }`],
    ["Query.verifyAccessLog", `{ verifyAccessLog { ok } }`],
    ["Query.grants", `{ grants { principal } }`],
    ["Query.entitlementReport", `{ entitlementReport(at: "2026-01-01T00:00:00Z") { principal } }`],
    ["Query.accessLog", `{ x: me { id } ... on Query { log: accessLog(first: 1) { nodes { hash } } } }`],
  ])("%s is denied to a USER and a CUSTODIAN", async (coordinate, query) => {
    for (const token of [user, custodian]) {
      const { body } = await t.gql(query, { token });
      expect(forbidden(body.errors)).toEqual([coordinate]);
      expect(body.data).not.toBeNull();
      expect(Object.values(body.data).filter((v) => v !== null && !(v as { id?: string }).id)).toEqual([]);
    }
  });

  test("a STEWARD and an OWNER read all four", async () => {
    await grantEntitlements(t, "gail");
    const owner = await t.token("oona", [Role.OWNER]);
    for (const token of [steward, owner]) {
      const { body } = await t.gql(
        `query($now: DateTime!) {
          accessLog(first: 5) { nodes { seq principal hash } }
          verifyAccessLog { ok checked }
          grants { principal entitlement }
          entitlementReport(at: $now) { principal entitlement }
        }`,
        { token, variables: { now: new Date().toISOString() } },
      );
      expect(body.errors).toBeUndefined();
      expect(body.data.accessLog.nodes).toHaveLength(5);
      expect(body.data.accessLog.nodes[0]).toEqual({
        seq: expect.any(Number),
        principal: expect.any(String),
        hash: expect.any(String),
      });
      expect(body.data.verifyAccessLog.ok).toBe(true);
      expect(body.data.verifyAccessLog.checked).toBeGreaterThan(0);
      const gail = [
        { principal: "gail", entitlement: "DEPTH" },
        { principal: "gail", entitlement: "REALTIME" },
      ];
      expect(body.data.grants).toEqual(expect.arrayContaining(gail));
      expect(body.data.entitlementReport).toEqual(expect.arrayContaining(gail));
    }
  });

  test("a mutation returning a RESTRICTED type is refused before it runs", async () => {
    const { body } = await t.gql(
      `mutation { grantEntitlement(principal: "uma", entitlement: DEPTH) { id } }`,
      {
        token: user,
      },
    );
    expect(forbidden(body.errors)).toEqual(["Mutation.grantEntitlement"]);
    const me = await t.gql(`{ me { entitlements } }`, { token: user });
    expect(me.body.data.me.entitlements).toEqual([]);
  });
});

describe("DEPTH masking", () => {
  const q = `{ latestQuotes(symbols: ["AAPL"]) { price bid bidSize ask askSize } }`;

  test("without DEPTH, bid/ask are null, no error, and listed under extensions.masked", async () => {
    const { body } = await t.gql(q, { token: user });
    expect(body.errors).toBeUndefined();
    expect(body.data.latestQuotes[0]).toEqual({
      price: expect.any(Number),
      bid: null,
      bidSize: null,
      ask: null,
      askSize: null,
    });
    expect((body as { extensions?: { masked?: string[] } }).extensions?.masked).toEqual(DEPTH_FIELDS);
  });

  test("masking holds through aliases and fragments", async () => {
    const { body } = await t.gql(
      `{ instrument(symbol: "MSFT") { latestQuote { b: bid ...D ... on Quote { askSize } } } } fragment D on Quote { ask }`,
      { token: user },
    );
    expect(body.data.instrument.latestQuote).toEqual({ b: null, ask: null, askSize: null });
    expect((body as { extensions?: { masked?: string[] } }).extensions?.masked).toEqual([
      "Quote.ask",
      "Quote.askSize",
      "Quote.bid",
    ]);
  });

  test("with DEPTH, the values are served and nothing is masked", async () => {
    await grantEntitlements(t, "dora");
    const { body } = await t.gql(q, { token: await t.token("dora", [Role.USER]) });
    expect(body.errors).toBeUndefined();
    expect(body.data.latestQuotes[0].bid).toEqual(expect.any(Number));
    expect(body.data.latestQuotes[0].askSize).toBe(3);
    expect((body as { extensions?: unknown }).extensions).toBeUndefined();
  });
});

describe("the WebSocket path enforces the same policy", () => {
  test("a denied field over graphql-ws", async () => {
    const client = t.ws({ connectionParams: { authorization: `Bearer ${user}` } });
    const r = await wsQuery(
      client,
      `{ q: quotes(first: 1) { nodes { symbol ...F } } } fragment F on Quote { source }`,
    );
    const data = r.data as { q: { nodes: { symbol: string; source: unknown }[] } };
    expect(data.q.nodes[0].symbol).toMatch(/AAPL|MSFT/);
    expect(data.q.nodes[0].source).toBeNull();
    expect(r.errors?.[0].extensions).toMatchObject({ code: "FORBIDDEN", coordinate: "Quote.source" });
  });

  test("masked coordinates are listed in the result's extensions", async () => {
    const client = t.ws({ connectionParams: { authorization: `Bearer ${user}` } });
    const r = (await wsQuery(client, `{ latestQuotes(symbols: ["AAPL"]) { bid } }`)) as {
      data: { latestQuotes: { bid: unknown }[] };
      extensions?: { masked?: string[] };
    };
    expect(r.data.latestQuotes[0].bid).toBeNull();
    expect(r.extensions?.masked).toEqual(["Quote.bid"]);
  });

  test("accessEvents is refused to a USER at subscribe time", async () => {
    const client = t.ws({ connectionParams: { authorization: `Bearer ${user}` } });
    const r = await wsQuery(client, `subscription { accessEvents { principal } }`);
    expect(r.data ?? null).toBeNull();
    expect(r.errors?.[0].extensions).toMatchObject({
      code: "FORBIDDEN",
      coordinate: "Subscription.accessEvents",
    });
  });

  test("accessEvents is refused to a CUSTODIAN too", async () => {
    const client = t.ws({ connectionParams: { authorization: `Bearer ${custodian}` } });
    const r = await wsQuery(
      client,
      `subscription S { e: accessEvents { ...E } } fragment E on AccessLogEntry { hash }`,
    );
    expect(r.errors?.[0].extensions?.code).toBe("FORBIDDEN");
  });
});

describe("forged tokens get nothing", () => {
  test("an alg-none token claiming OWNER cannot read the access log", async () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const forged = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(
      JSON.stringify({ sub: "mallory", roles: ["OWNER"], exp }),
    ).toString("base64url")}.`;
    const { status, body } = await t.gql(`{ accessLog { nodes { id } } }`, { token: forged });
    expect(status).toBe(401);
    expect(body.data).toBeUndefined();
    expect(body.errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");
  });

  test("a token signed with another key cannot open a socket", async () => {
    const { SignJWT } = await import("jose");
    const token = await new SignJWT({ roles: ["STEWARD"] })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("mallory")
      .setExpirationTime("1m")
      .sign(new TextEncoder().encode("k".repeat(40)));
    const closed = await new Promise<{ code: number }>((resolve) =>
      t.ws({
        connectionParams: { authorization: `Bearer ${token}` },
        on: { closed: (e) => resolve(e as { code: number }) },
      }),
    );
    expect(closed.code).toBe(4403);
  });
});

describe("a non-null field a steward restricts", () => {
  afterAll(async () => {
    for (const coordinate of ["Quote.price", "Instrument.name"])
      await t.gql(`mutation($c: String!) { classifyField(coordinate: $c, level: PUBLIC) { level } }`, {
        token: steward,
        variables: { c: coordinate },
      });
  });

  test("nulls its nearest nullable parent, with the error naming it", async () => {
    for (const coordinate of ["Quote.price", "Instrument.name"]) {
      const { body } = await t.gql(
        `mutation($c: String!) { classifyField(coordinate: $c, level: RESTRICTED) { level } }`,
        { token: steward, variables: { c: coordinate } },
      );
      expect(body.data.classifyField.level).toBe("RESTRICTED");
    }
    // Quote.price is Float!: its quote (nullable) is nulled, the instrument above it is served.
    const quote = await t.gql(`{ instrument(symbol: "AAPL") { symbol latestQuote { symbol price } } }`, {
      token: user,
    });
    expect(quote.body.data).toEqual({ instrument: { symbol: "AAPL", latestQuote: null } });
    expect(quote.body.errors).toEqual([
      expect.objectContaining({
        path: ["instrument", "latestQuote", "price"],
        extensions: expect.objectContaining({ code: "FORBIDDEN", coordinate: "Quote.price" }),
      }),
    ]);
    // Instrument.name is String!: the instrument is nulled, its sibling root field is served.
    const named = await t.gql(`{ instrument(symbol: "AAPL") { symbol name } me { id } }`, { token: user });
    expect(named.body.data).toEqual({ instrument: null, me: { id: "uma" } });
    expect(forbidden(named.body.errors)).toEqual(["Instrument.name"]);
    // Through a list of non-null items up to a non-null root field: the whole data is null.
    const listed = await t.gql(`{ quotes(first: 2) { nodes { price } } }`, { token: user });
    expect(listed.body.data).toBeNull();
    expect(forbidden(listed.body.errors)).toContain("Quote.price");
    // Who may read RESTRICTED reads it all.
    const asSteward = await t.gql(`{ instrument(symbol: "AAPL") { name latestQuote { price } } }`, {
      token: steward,
    });
    expect(asSteward.body.errors).toBeUndefined();
    expect(asSteward.body.data.instrument.latestQuote.price).toEqual(expect.any(Number));
  });
});
