import { Client } from "pg";
import { startMockFeed, type MockFeed } from "../../src/feed";
import type { Ingest } from "../../src/ingest";
import { setLogLevel } from "../../src/log";
import { expectMatchesHistory, until } from "../ingest/ingest.helpers";
import { startTestPlatform, type TestPlatform } from "../support/server";

// The replica holding the ingest lease loses its lease connection (here its session is terminated, as
// a failover of Postgres or a network cut would do): it stops ingest at once, then, being the only
// replica, takes the lease again and resumes from the checkpoint with nothing lost.
let feed: MockFeed;
let t: TestPlatform;
let admin: Client;

beforeAll(async () => {
  setLogLevel("silent");
  feed = await startMockFeed({ seed: 23, rate: 1000, symbols: 6 });
  t = await startTestPlatform({
    INGEST: "on",
    FEED_URL: feed.url,
    FEED_KEY: "tickgraph",
    FEED_SECRET: "tickgraph",
    REPLICA_NAME: "solo",
    LEASE_RETRY_MS: "500",
  });
  admin = new Client({ connectionString: t.databaseUrl });
  await admin.connect();
});
afterAll(async () => {
  await admin?.end();
  await t?.close();
  await feed?.close();
});

const stored = async (): Promise<number> =>
  (await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM quotes`)).rows[0].n;

test("losing the lease connection stops ingest at once; taking the lease again resumes it with no gap", async () => {
  const first: Ingest = t.platform.ingest!;
  await until("trades stored", async () => ((await stored()) > 500 ? true : undefined));

  const { rows } = await admin.query<{ ok: boolean }>(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'tickgraph-lease/solo' AND datname = current_database()`,
  );
  expect(rows).toEqual([{ ok: true }]);
  await until("ingest stopped", () => (first.status().state === "stopped" ? true : undefined));
  expect(first.running).toBe(false);

  await until("the lease taken again", () =>
    t.platform.ingest && t.platform.ingest !== first && t.platform.lease!.held ? true : undefined,
  );
  const second = t.platform.ingest!;
  const resumedFrom = await stored();
  await until("ingest resumed", async () => ((await stored()) > resumedFrom + 500 ? true : undefined));
  await second.close();

  // Every id up to the checkpoint stored once: what the first run had buffered and dropped, and what
  // the feed sent while no one ingested, came back over the backfill.
  const { rows: cp } = await admin.query<{ last_ids: Record<string, number> }>(
    `SELECT last_ids FROM ingest_checkpoints`,
  );
  const { stored: n, late } = await expectMatchesHistory(t.platform.db.dataSource, feed, cp[0].last_ids);
  expect(late).toBe(0);
  expect(n).toBe(Object.values(cp[0].last_ids).reduce((a, b) => a + b, 0));
  expect(second.counts().received.backfill).toBeGreaterThan(0);
});
