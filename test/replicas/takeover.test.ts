import { randomBytes } from "node:crypto";
import { Client } from "pg";
import { startMockFeed, type MockFeed } from "../../src/feed";
import type { Ingest } from "../../src/ingest";
import { setLogLevel } from "../../src/log";
import { startPlatform, type Platform } from "../../src/platform";
import { expectMatchesHistory } from "../ingest/ingest.helpers";
import { until } from "../support/wait";
import { createTestDatabase } from "../support/database";
import { testDbPrefix } from "../support/env";
import { testConfig } from "../support/server";

// Two replicas on one database, each logged in as its own role so that the database itself says who
// wrote what. A loses its lease while a batch of it waits on a lock; B takes over; then the lock goes.
// A's batch must not commit after B's take-over: not even its checkpoint, not even trades the unique key
// would have silently dropped as repeats of B's.
let feed: MockFeed;
let db: { url: string; drop(): Promise<void> };
let admin: Client;
const platforms: Platform[] = [];
const roles = { a: `${testDbPrefix()}ra${randomBytes(3).toString("hex")}`, b: "" };
roles.b = roles.a.replace(/ra(\w+)$/, "rb$1");

/** `db.url` logged in as `role`. */
function as(role: string): string {
  const u = new URL(db.url);
  u.username = role;
  u.password = "replica";
  return u.toString();
}

beforeAll(async () => {
  setLogLevel("silent");
  feed = await startMockFeed({ seed: 31, rate: 1500, symbols: 6 });
  db = await createTestDatabase();
  admin = new Client({ connectionString: db.url });
  await admin.connect();
  for (const role of Object.values(roles))
    await admin.query(`CREATE ROLE "${role}" LOGIN SUPERUSER PASSWORD 'replica'`);
  // Every committed statement writing ingest's tables, with who ran it and when.
  await admin.query(`
    CREATE TABLE test_writes (at timestamptz NOT NULL DEFAULT clock_timestamp(),
                              who text NOT NULL DEFAULT session_user, what text NOT NULL);
    CREATE FUNCTION test_note_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO test_writes (what) VALUES (TG_TABLE_NAME || ' ' || TG_OP); RETURN NULL; END $$;
    CREATE TRIGGER note_quotes AFTER INSERT ON quotes FOR EACH STATEMENT EXECUTE FUNCTION test_note_write();
    CREATE TRIGGER note_quarantine AFTER INSERT ON quarantine FOR EACH STATEMENT EXECUTE FUNCTION test_note_write();
    CREATE TRIGGER note_checkpoints AFTER INSERT OR UPDATE ON ingest_checkpoints
      FOR EACH STATEMENT EXECUTE FUNCTION test_note_write();`);
});
afterAll(async () => {
  for (const p of platforms) await p.close();
  await feed?.close();
  await admin?.end();
  await db?.drop();
  const c = new Client({ connectionString: process.env.TICKGRAPH_TEST_ADMIN_URL });
  await c.connect();
  for (const role of Object.values(roles)) await c.query(`DROP ROLE IF EXISTS "${role}"`);
  await c.end();
});

async function replica(name: "a" | "b"): Promise<Platform> {
  const p = await startPlatform(
    testConfig(as(roles[name]), {
      FEED_URL: feed.url,
      FEED_KEY: "tickgraph",
      FEED_SECRET: "tickgraph",
      REPLICA_NAME: name,
      LEASE_RETRY_MS: "200",
    }),
  );
  platforms.push(p);
  return p;
}

const count = async (sql: string, params: unknown[] = []): Promise<number> =>
  (await admin.query<{ n: number }>(sql, params)).rows[0].n;

test("a replica that loses its lease with a batch in flight writes nothing after the other takes over", async () => {
  const a = await replica("a");
  const first: Ingest = a.ingest!;
  await until(
    "A stores trades",
    async () => ((await count(`SELECT count(*)::int AS n FROM quotes`)) > 1000 ? true : undefined),
    30_000,
  );
  const b = await replica("b");
  expect(b.ingest).toBeNull();
  const committedByA: number[] = [];
  let lost = false;
  first.onCommit(() => lost && committedByA.push(Date.now()));

  // Hold every write to quotes until A has a batch waiting for it.
  const locker = new Client({ connectionString: db.url });
  await locker.connect();
  try {
    await locker.query("BEGIN");
    await locker.query("LOCK TABLE quotes IN SHARE ROW EXCLUSIVE MODE");
    await until("a batch of A waiting on the lock", async () =>
      (await count(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'`,
        [roles.a],
      )) > 0
        ? true
        : undefined,
    );
    // A's lease session ends (as a network cut would end it) and A cannot log in again: B takes over.
    await admin.query(`ALTER ROLE "${roles.a}" NOLOGIN`);
    const { rows } = await admin.query(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'tickgraph-lease/a' AND datname = current_database()`,
    );
    expect(rows).toEqual([{ ok: true }]);
    await until("B claims the stream", async () =>
      b.ingest &&
      (await count(
        `SELECT count(*)::int AS n FROM test_writes WHERE who = $1 AND what LIKE 'ingest_checkpoints%'`,
        [roles.b],
      )) > 0
        ? true
        : undefined,
    );
    // From B's claim on, nothing of A may commit: its batch waiting on the lock must roll back. (Before
    // it, A still held the stream, and a part that did not wait on the lock could commit.)
    lost = true;
    await locker.query("COMMIT");
  } finally {
    await locker.end();
  }

  await until("A stopped", () => (first.status().state === "stopped" ? true : undefined), 30_000);
  const atRelease = await count(`SELECT count(*)::int AS n FROM quotes`);
  await until("B ingests", async () =>
    (await count(`SELECT count(*)::int AS n FROM quotes`)) > atRelease + 1000 ? true : undefined,
  );
  await b.ingest!.close();

  // Every write of A committed before B's first one: they never ingested at the same time.
  const { rows: spans } = await admin.query<{ who: string; first: Date; last: Date }>(
    `SELECT who, min(at) AS first, max(at) AS last FROM test_writes GROUP BY who`,
  );
  const span = Object.fromEntries(spans.map((s) => [s.who, s]));
  expect(Object.keys(span).sort()).toEqual([roles.a, roles.b].sort());
  expect(span[roles.a].last.getTime()).toBeLessThan(span[roles.b].first.getTime());
  expect(committedByA).toEqual([]);

  // And what B resumed from is whole: every trade up to its checkpoint stored once.
  const { rows: cp } = await admin.query<{ last_ids: Record<string, number> }>(
    `SELECT last_ids FROM ingest_checkpoints`,
  );
  const { stored } = await expectMatchesHistory(b.db.dataSource, feed, cp[0].last_ids);
  expect(stored).toBe(Object.values(cp[0].last_ids).reduce((x, y) => x + y, 0));
}, 120_000);
