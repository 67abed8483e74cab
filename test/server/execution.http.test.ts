import { Role } from "../../src/policy/principal";
import { seedQuotes } from "../support/seed";
import { startTestPlatform, type TestPlatform } from "../support/server";

// HTTP queries run compiled; policy, masking, variables and directives hold on that path.
let t: TestPlatform;
let user: string;
beforeAll(async () => {
  t = await startTestPlatform({}, {}, (url) => seedQuotes(url, { symbols: ["AAPL", "MSFT"], perSymbol: 5 }));
  user = await t.token("uma", [Role.USER]);
});
afterAll(() => t.close());

async function executions(): Promise<Record<string, number>> {
  const text = await (await fetch(t.url.replace("/graphql", "/metrics"))).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^tickgraph_graphql_executions_total\{engine="([^"]+)"\} (\d+)/gm))
    counts[m[1]] = Number(m[2]);
  return counts;
}

/** How many operations each engine ran during `fn`. */
async function engines(fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = await executions();
  await fn();
  const after = await executions();
  return Object.fromEntries(
    Object.entries(after)
      .map(([k, v]) => [k, v - (before[k] ?? 0)])
      .filter(([, v]) => v !== 0),
  );
}

test("a denied field and masked DEPTH fields, through a fragment and an alias, on the compiled path", async () => {
  let body: Awaited<ReturnType<TestPlatform["gql"]>>["body"] & { extensions?: { masked?: string[] } } = {};
  const ran = await engines(async () => {
    ({ body } = await t.gql(
      `{ q: quotes(symbols: ["AAPL"], first: 2) { nodes { symbol b: bid ...F } } } fragment F on Quote { source ask }`,
      { token: user },
    ));
  });
  expect(ran).toEqual({ compiled: 1 });
  expect(body.data.q.nodes).toEqual([
    { symbol: "AAPL", b: null, source: null, ask: null },
    { symbol: "AAPL", b: null, source: null, ask: null },
  ]);
  expect(body.errors?.map((e) => [e.extensions?.code, e.extensions?.coordinate, e.path])).toEqual([
    ["FORBIDDEN", "Quote.source", ["q", "nodes", 0, "source"]],
    ["FORBIDDEN", "Quote.source", ["q", "nodes", 1, "source"]],
  ]);
  expect(body.extensions?.masked).toEqual(["Quote.ask", "Quote.bid"]);
});

test("@include and @skip follow the variables", async () => {
  const query = `query($full: Boolean!) { quotes(symbols: ["MSFT"], first: 1) { nodes { symbol price @include(if: $full) size @skip(if: $full) } } }`;
  const full = await t.gql(query, { variables: { full: true } });
  const brief = await t.gql(query, { variables: { full: false } });
  expect(full.body.data.quotes.nodes).toEqual([{ symbol: "MSFT", price: expect.any(Number) }]);
  expect(brief.body.data.quotes.nodes).toEqual([{ symbol: "MSFT", size: expect.any(Number) }]);
});

test("a variable of the wrong type is BAD_USER_INPUT (200 under application/json), before anything runs", async () => {
  const { status, body } = await t.gql(`query($n: Int) { quotes(first: $n) { nodes { symbol } } }`, {
    variables: { n: "ten" },
  });
  expect(status).toBe(200);
  expect(body.data).toBeUndefined();
  expect(body.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
  expect(body.errors?.[0].message).toMatch(/^Variable "\$n" got invalid value "ten"/);
});

test("a mutation runs on graphql-js", async () => {
  let body: Awaited<ReturnType<TestPlatform["gql"]>>["body"] = {};
  const ran = await engines(async () => {
    ({ body } = await t.gql(`mutation { requestAccess(entitlement: DEPTH, reason: "desk") { status } }`, {
      token: user,
    }));
  });
  expect(body).toEqual({ data: { requestAccess: { status: "PENDING" } } });
  expect(ran).toEqual({ "graphql-js": 1 });
});
