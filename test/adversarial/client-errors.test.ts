import { SignJWT } from "jose";
import { Role } from "../../src/policy/principal";
import WebSocket from "ws";
import { startTestPlatform, TEST_SECRET, wsQuery, type TestPlatform } from "../support/server";

// A client's mistake is answered as one, never as a server failure: no 500, no INTERNAL_SERVER_ERROR,
// no stack trace or file path, GraphQL JSON errors even for a body that is not JSON. Status codes as
// the GraphQL-over-HTTP spec asks: a request error is 200 under application/json and 4xx under
// application/graphql-response+json.
let t: TestPlatform;
let token: string;

beforeAll(async () => {
  t = await startTestPlatform();
  token = await t.token("cleo", [Role.USER]);
});
afterAll(() => t.close());

const JSON_TYPE = "application/json";
const GQL_RESPONSE = "application/graphql-response+json";

interface Raw {
  status: number;
  type: string;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

async function post(
  body: string,
  opts: { accept?: string; contentType?: string; bearer?: string | null } = {},
): Promise<Raw> {
  const bearer = opts.bearer === undefined ? token : opts.bearer;
  const res = await fetch(t.url, {
    method: "POST",
    headers: {
      "content-type": opts.contentType ?? JSON_TYPE,
      accept: opts.accept ?? JSON_TYPE,
      ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
    },
    body,
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, type: res.headers.get("content-type") ?? "", text, body: parsed };
}

/** Nothing of the server's insides: no stack frame, no file path, no SQL. */
function expectClean(r: Raw): void {
  expect(r.text).not.toMatch(/\n\s+at |node_modules|\/src\/|\.ts:\d|\.js:\d|SELECT |Maximum call stack/);
  expect(r.status).toBeLessThan(500);
  expect(r.body).toBeDefined();
  for (const e of r.body.errors ?? []) expect(e.extensions?.code).not.toBe("INTERNAL_SERVER_ERROR");
}

const codeOf = (r: Raw) => r.body.errors?.[0]?.extensions?.code;

async function bothMediaTypes(query: string, variables?: unknown, operationName?: string) {
  const body = JSON.stringify({ query, variables, operationName });
  return { json: await post(body), gql: await post(body, { accept: GQL_RESPONSE }) };
}

/** A request error: 200 with errors under application/json, 400 under graphql-response+json. */
function expectRequestError(r: { json: Raw; gql: Raw }, code: string): void {
  expectClean(r.json);
  expectClean(r.gql);
  expect([r.json.status, r.json.type.split(";")[0], codeOf(r.json)]).toEqual([200, JSON_TYPE, code]);
  expect([r.gql.status, r.gql.type.split(";")[0], codeOf(r.gql)]).toEqual([400, GQL_RESPONSE, code]);
  expect(r.json.body.data).toBeUndefined();
  expect(r.gql.body.data).toBeUndefined();
}

test("first out of range is BAD_USER_INPUT, never 500", async () => {
  expectRequestError(await bothMediaTypes(`{ quotes(first: 1001) { nodes { id } } }`), "BAD_USER_INPUT");
  expectRequestError(await bothMediaTypes(`{ quotes(first: 0) { nodes { id } } }`), "BAD_USER_INPUT");
});

test("an unknown operationName is a request error", async () => {
  for (const doc of [`query A { me { id } } query B { me { id } }`, `query A { me { id } }`])
    expectRequestError(await bothMediaTypes(doc, { x: 1 }, "C"), "OPERATION_RESOLUTION_FAILURE");
});

test("a subscription sent over HTTP is refused with a pointer to the WebSocket", async () => {
  const r = await bothMediaTypes(`subscription { quoteTicks(symbols: ["AAPL"]) { price } }`);
  expectRequestError(r, "BAD_REQUEST");
  expect(r.json.body.errors[0].message).toMatch(/WebSocket/);
});

test("deeply nested variables are refused over HTTP and over WebSocket", async () => {
  const depth = 100_000;
  const deep = "[".repeat(depth) + '"x"' + "]".repeat(depth);
  const query = `query($s: [String!]) { quotes(symbols: $s, first: 1) { nodes { id } } }`;
  const body = `{"query":${JSON.stringify(query)},"variables":{"s":${deep}}}`;
  const r = await post(body);
  expectClean(r);
  expect(r.status).toBe(400);
  expect(codeOf(r)).toBe("BAD_REQUEST");

  // Sent by hand: a client library would itself overflow its stack serializing such variables.
  const ws = new WebSocket(t.wsUrl, "graphql-transport-ws");
  const messages: { type: string; id?: string; payload?: unknown }[] = [];
  const arrived = () =>
    new Promise<void>((resolve) =>
      ws.once("message", (m) => resolve(void messages.push(JSON.parse(String(m))))),
    );
  await new Promise((resolve) => ws.once("open", resolve));
  ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
  await arrived();
  expect(messages[0].type).toBe("connection_ack");
  ws.send(
    `{"type":"subscribe","id":"deep","payload":{"query":${JSON.stringify(query)},"variables":{"s":${deep}}}}`,
  );
  await arrived();
  expect(messages[1]).toMatchObject({ type: "error", id: "deep" });
  expect((messages[1].payload as { extensions: { code: string } }[])[0].extensions.code).toBe("BAD_REQUEST");
  // The connection survives its client's mistake.
  ws.send(JSON.stringify({ type: "subscribe", id: "me", payload: { query: "{ me { id } }" } }));
  await arrived();
  expect(messages[2]).toMatchObject({ type: "next", id: "me", payload: { data: { me: { id: "cleo" } } } });
  ws.close();
});

test("a cursor whose numbers are out of range is a malformed cursor", async () => {
  const huge = (parts: string[]) => Buffer.from(parts.join(":")).toString("base64url");
  for (const [query, cursor] of [
    [`{ quotes(first: 1, after: $c) { nodes { id } } }`, huge(["9223372036854775807", "1"])],
    [`{ quotes(first: 1, after: $c) { nodes { id } } }`, huge(["-9223372036854775808", "-5"])],
    [
      `{ windowAggregates(size: ONE_MINUTE, first: 1, after: $c) { nodes { symbol } } }`,
      huge(["9999999999999999999", "A"]),
    ],
    [`{ accessLog(first: 1, after: $c) { nodes { seq } } }`, huge(["99999999999999999999"])],
    [`{ quarantine(first: 1, after: $c) { nodes { id } } }`, huge(["9223372036854775808"])],
  ]) {
    const q = `query($c: String) ${query}`;
    const r = await post(JSON.stringify({ query: q, variables: { c: cursor } }), {
      bearer: await t.token("root", [Role.STEWARD]),
    });
    expectClean(r);
    expect(codeOf(r)).toBe("BAD_USER_INPUT");
    expect(r.body.errors[0].message).toMatch(/cursor/);
  }
});

test("a token whose sub is not a string is refused as unauthenticated", async () => {
  const key = new TextEncoder().encode(TEST_SECRET);
  for (const sub of [42, "", { id: "x" }]) {
    const forged = await new SignJWT({ sub: sub as string, roles: ["USER"] })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime("1h")
      .sign(key);
    const r = await post(JSON.stringify({ query: `{ me { id } }` }), { bearer: forged });
    expectClean(r);
    expect([r.status, codeOf(r)]).toEqual([401, "UNAUTHENTICATED"]);
  }
});

test("a body that is not JSON, too large, or in an unknown charset gets a GraphQL JSON error", async () => {
  const cases: [string, { contentType?: string }, number][] = [
    [`{"query": "{ me { id } }"`, {}, 400],
    ["x".repeat(2 * 1024 * 1024), {}, 413],
    [`{"query": "{ me { id } }"}`, { contentType: "application/json; charset=koi8-r" }, 415],
  ];
  for (const [body, opts, status] of cases) {
    for (const accept of [JSON_TYPE, GQL_RESPONSE]) {
      const r = await post(body, { ...opts, accept });
      expectClean(r);
      expect(r.status).toBe(status);
      expect(r.type.split(";")[0]).toBe(accept);
      expect(codeOf(r)).toBe("BAD_REQUEST");
    }
  }
});

test("other routes answer unknown methods and bodies without a stack trace", async () => {
  const res = await fetch(t.url.replace("/graphql", "/readyz"), { method: "POST", body: "{" });
  const text = await res.text();
  expect(res.status).toBeLessThan(500);
  expect(text).not.toMatch(/\n\s+at |node_modules|\/src\//);
  const put = await fetch(t.url, { method: "PUT", headers: { authorization: `Bearer ${token}` } });
  expect(put.status).toBe(405);
  expect(await put.text()).not.toMatch(/\n\s+at |node_modules/);
});

test("over WebSocket the same mistakes are errors of their operation, and the connection serves on", async () => {
  const ws = t.ws({ connectionParams: { authorization: `Bearer ${token}` } });
  const cursor = Buffer.from("9223372036854775807:1").toString("base64url");
  const cases: [string, Record<string, unknown> | undefined, string][] = [
    [`{ quotes(first: 1001) { nodes { id } } }`, undefined, "BAD_USER_INPUT"],
    [`query($c: String) { quotes(first: 1, after: $c) { nodes { id } } }`, { c: cursor }, "BAD_USER_INPUT"],
    [
      `query($s: [String!]) { quotes(symbols: $s, first: 1) { nodes { id } } }`,
      { s: ["a\u0000"] },
      "BAD_USER_INPUT",
    ],
  ];
  for (const [query, variables, code] of cases) {
    const r = await wsQuery(ws, query, variables);
    expect(r.errors?.[0].extensions?.code).toBe(code);
    expect(JSON.stringify(r)).not.toMatch(/\n\s+at |node_modules|\/src\//);
  }
  expect(await wsQuery(ws, `{ me { id } }`)).toEqual({ data: { me: { id: "cleo" } } });
});
