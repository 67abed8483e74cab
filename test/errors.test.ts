import { Client } from "pg";
import { startTestPlatform, wsQuery, type TestPlatform } from "./support/server";

let t: TestPlatform;
beforeAll(async () => {
  t = await startTestPlatform({ NODE_ENV: "production" });
  // Break the database under the server: every quotes statement now fails inside Postgres.
  const c = new Client({ connectionString: t.databaseUrl });
  await c.connect();
  await c.query("ALTER TABLE quotes RENAME TO quotes_gone");
  await c.end();
});
afterAll(() => t.close());

function expectMasked(error: { message: string; extensions?: Record<string, unknown> } | undefined) {
  expect(error?.extensions?.code).toBe("INTERNAL_SERVER_ERROR");
  expect(error?.message).toMatch(/^Internal server error \(id [0-9a-f-]{36}\)\.$/);
  expect(error?.extensions?.errorId).toEqual(expect.any(String));
  expect(JSON.stringify({ ...error, path: undefined })).not.toMatch(/quotes|SELECT|relation|stack|at /i);
}

const compiledRuns = async () => {
  const text = await (await fetch(t.url.replace("/graphql", "/metrics"))).text();
  return Number(/^tickgraph_graphql_executions_total\{engine="compiled"\} (\d+)/m.exec(text)?.[1] ?? 0);
};

test("an unexpected error reaches an HTTP client as a message with an id, no SQL or stack", async () => {
  const before = await compiledRuns();
  const { body } = await t.gql(`{ quotes { nodes { id } } }`);
  expect(body.data).toBeNull();
  expectMasked(body.errors?.[0]);
  // The query ran compiled: masking holds on that path.
  expect((await compiledRuns()) - before).toBe(1);
});

test("and a WebSocket client the same way", async () => {
  const r = await wsQuery(t.ws(), `{ latestQuotes(symbols: ["A"]) { id } }`);
  expectMasked(r.errors?.[0]);
});

test("client errors keep their message and code, without a stack trace", async () => {
  const { body } = await t.gql(`{ quotes(first: 0) { nodes { id } } }`);
  expect(body.errors?.[0].extensions).toEqual({ code: "BAD_USER_INPUT", argument: "first", max: 1000 });
});

test("readiness reports the broken database honestly enough: the server still answers /healthz", async () => {
  const res = await fetch(t.url.replace("/graphql", "/healthz"));
  expect(res.status).toBe(200);
});
