import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "graphql-ws";
import { Client } from "pg";
import WebSocket from "ws";
import { Role } from "../../src/policy/principal";
import { mintToken } from "../../src/policy/tokens";
import { until } from "../support/wait";
import { createTestDatabase } from "../support/database";
import { killAll, run, type Proc } from "../support/processes";
import { seedQuotes } from "../support/seed";
import { TEST_SECRET, wsQuery } from "../support/server";

// `serve` as a process with STATEMENT_TIMEOUT_MS: a query that runs longer is cut by Postgres, the client
// gets a masked error with an id, and the process's own log (pino, JSON on stdout) holds that id with
// the cause.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let serve: Proc;
let url: string;
let token: string;
const TIMEOUT_MS = 300;

beforeAll(async () => {
  db = await createTestDatabase();
  await seedQuotes(db.url, { symbols: ["AAPL"], perSymbol: 5 });
  serve = await run(
    ["serve", "--port", "0"],
    {
      DATABASE_URL: db.url,
      INGEST: "off",
      HOST: "127.0.0.1",
      JWT_SECRET: TEST_SECRET,
      DATA_DIR: mkdtempSync(join(tmpdir(), "tickgraph-timeout-")),
      NODE_ENV: "production",
      STATEMENT_TIMEOUT_MS: String(TIMEOUT_MS),
      LOG_LEVEL: "error",
    },
    /serving GraphQL at (http:\/\/\S+)/,
  );
  url = serve.match[1];
  token = await mintToken(TEST_SECRET, "tess", [Role.USER], 3600);
});
afterAll(async () => {
  await killAll();
  await db?.drop();
});

/** The log line of an error id, once the process has written it. */
function loggedWith(errorId: string): Promise<Record<string, unknown>> {
  return until(`a log line with ${errorId}`, () =>
    serve.out
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.errorId === errorId),
  );
}

test("a statement over STATEMENT_TIMEOUT_MS is cut; the client gets an id, the log has it with the cause", async () => {
  // Every read of quotes waits behind this lock until the statement timeout cuts it.
  const locker = new Client({ connectionString: db.url });
  await locker.connect();
  await locker.query("BEGIN");
  await locker.query("LOCK TABLE quotes IN ACCESS EXCLUSIVE MODE");
  try {
    const started = Date.now();
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: `{ quotes(first: 1) { nodes { price } } }` }),
      signal: AbortSignal.timeout(25_000),
    });
    const body = (await res.json()) as {
      data: unknown;
      errors: { message: string; extensions: { code: string; errorId: string } }[];
    };
    // Answered while the lock is still held, and not before the timeout: the statement was cut.
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS);
    expect(body.data).toBeNull();
    const [error] = body.errors;
    expect(error.extensions.code).toBe("INTERNAL_SERVER_ERROR");
    expect(error.message).toBe(`Internal server error (id ${error.extensions.errorId}).`);
    expect(JSON.stringify({ ...error, path: undefined })).not.toMatch(/timeout|statement|quotes|cancel/i);

    const line = await loggedWith(error.extensions.errorId);
    expect(line).toMatchObject({ level: 50, msg: "unexpected error", errorId: error.extensions.errorId });
    expect((line.err as { message: string }).message).toMatch(/canceling statement due to statement timeout/);

    // The WebSocket path alike.
    const ws = createClient({
      url: url.replace(/^http/, "ws"),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${token}` },
    });
    try {
      const r = await wsQuery(ws, `{ latestQuotes(symbols: ["AAPL"]) { price } }`);
      const wsError = r.errors?.[0] as { message: string; extensions: { code: string; errorId: string } };
      expect(wsError.extensions.code).toBe("INTERNAL_SERVER_ERROR");
      expect(wsError.message).toBe(`Internal server error (id ${wsError.extensions.errorId}).`);
      const wsLine = await loggedWith(wsError.extensions.errorId);
      expect((wsLine.err as { message: string }).message).toMatch(/statement timeout/);
    } finally {
      await ws.dispose();
    }
  } finally {
    await locker.query("ROLLBACK");
    await locker.end();
  }
  // Once the lock is gone the same query is answered.
  const again = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: `{ quotes(first: 1) { nodes { price } } }` }),
  });
  expect(((await again.json()) as { data: unknown }).data).toEqual({ quotes: { nodes: [{ price: 105 }] } });
});
