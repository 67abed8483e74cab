import { Client } from "pg";
import { until } from "./support/wait";
import { ADMIN_ENV } from "./support/env";
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

test("liveness holds while readiness answers 503 naming what fails: pending migrations, then the database", async () => {
  const ready = async () => {
    const res = await fetch(t.url.replace("/graphql", "/readyz"));
    return { status: res.status, body: await res.json() };
  };
  const health = () => fetch(t.url.replace("/graphql", "/healthz")).then((r) => r.status);
  expect(await ready()).toEqual({
    status: 200,
    body: { status: "ready", checks: { database: true, migrations: true, listener: true } },
  });

  // A migration the database has not applied.
  const c = new Client({ connectionString: t.databaseUrl });
  await c.connect();
  const [newest] = (
    await c.query(`DELETE FROM migrations WHERE id = (SELECT max(id) FROM migrations) RETURNING *`)
  ).rows;
  try {
    expect(await ready()).toEqual({
      status: 503,
      body: { status: "not ready", checks: { database: true, migrations: false, listener: true } },
    });
    expect(await health()).toBe(200);
  } finally {
    await c.query(`INSERT INTO migrations (id, "timestamp", name) VALUES ($1, $2, $3)`, [
      newest.id,
      newest.timestamp,
      newest.name,
    ]);
    await c.end();
  }
  expect((await ready()).status).toBe(200);

  // The database refuses the server's connections: every open one is cut, no new one is let in.
  const name = new URL(t.databaseUrl).pathname.slice(1);
  const admin = new Client({ connectionString: process.env[ADMIN_ENV] });
  await admin.connect();
  try {
    await admin.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`);
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, [name]);
    expect(await ready()).toEqual({
      status: 503,
      body: { status: "not ready", checks: { database: false } },
    });
    expect(await health()).toBe(200);
  } finally {
    await admin.query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`);
    await admin.end();
  }
  await until("ready again", async () => ((await ready()).status === 200 ? true : undefined));
});
