import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KEY_HEADER, SECRET_HEADER, type SnapshotsResponse } from "../../src/feed";
import { expectMatchesHistory, sleep, testDb, until, type TestDb } from "./ingest.helpers";
import { kill, killAll, run } from "../support/processes";

// Real processes, as in production: `npm test` builds dist first (npm ci runs the prepare script).

let db: TestDb;
beforeAll(async () => {
  db = await testDb();
});
afterAll(async () => {
  await killAll();
  await db.close();
});

async function count(): Promise<number> {
  return (await db.ds.query(`SELECT count(*)::int AS n FROM quotes`))[0].n;
}

test("kill -9 during ingest, start again: it resumes from its checkpoint with no gap and no duplicate", async () => {
  const feed = await run(
    [
      "feed",
      "--port",
      "0",
      "--seed",
      "21",
      "--rate",
      "2000",
      "--symbols",
      "10",
      "--faults",
      "late=0.005,duplicate=0.01",
    ],
    {},
    /stream: (ws:\/\/\S+)/,
  );
  const feedUrl = feed.match[1];
  const restUrl = feedUrl.replace(/^ws/, "http").replace(/\/v2\/iex$/, "");
  const serveEnv = {
    DATABASE_URL: db.url,
    FEED_URL: feedUrl,
    FEED_KEY: "tickgraph",
    FEED_SECRET: "tickgraph",
    JWT_SECRET: "restart-test-secret-of-at-least-32-bytes",
    HOST: "127.0.0.1",
    DATA_DIR: mkdtempSync(join(tmpdir(), "tickgraph-restart-")),
  };
  const serving = /serving GraphQL at/;

  const first = await run(["serve", "--port", "0"], serveEnv, serving);
  await until("trades stored", async () => ((await count()) > 3000 ? true : undefined));
  await kill(first.proc, "SIGKILL");
  const atKill = await count();
  // What the checkpoint says at the crash is true of the store: it was committed with the rows.
  const [{ last_ids: atCrash }] = await db.ds.query(`SELECT last_ids FROM ingest_checkpoints`);
  await expectMatchesHistory(db.ds, { restUrl }, atCrash);
  await sleep(1000); // the feed keeps trading: the second run must backfill this

  const [{ restartedAt }] = await db.ds.query(`SELECT now() AS "restartedAt"`);
  const second = await run(["serve", "--port", "0"], serveEnv, serving);
  const snapshot = (await (
    await fetch(`${restUrl}/v2/stocks/snapshots?symbols=${encodeURIComponent("AAPL,MSFT,NVDA")}`, {
      headers: { [KEY_HEADER]: "tickgraph", [SECRET_HEADER]: "tickgraph" },
    })
  ).json()) as SnapshotsResponse;
  // Caught up past what the feed had when the second run started, on the busiest symbols.
  await until("caught up", async () => {
    const [row] = await db.ds.query(`SELECT last_ids FROM ingest_checkpoints`);
    return ["AAPL", "MSFT", "NVDA"].every((s) => row.last_ids[s] > snapshot[s].latestTrade!.i)
      ? true
      : undefined;
  });
  await kill(second.proc, "SIGKILL");
  const [{ last_ids }] = await db.ds.query(`SELECT last_ids FROM ingest_checkpoints`);
  const [{ resumed }] = await db.ds.query(
    `SELECT count(*)::int AS resumed FROM quotes WHERE source = 'backfill' AND received_at >= $1`,
    [restartedAt],
  );

  const { stored, late } = await expectMatchesHistory(db.ds, { restUrl }, last_ids);
  expect(stored).toBeGreaterThan(atKill);
  expect(resumed).toBeGreaterThan(0);
  expect(stored + late).toBe(Object.values(last_ids as Record<string, number>).reduce((a, b) => a + b, 0));
  await kill(feed.proc, "SIGTERM");
}, 90_000);
