import { Client } from "pg";
import { startMockFeed, type MockFeed } from "../../src/feed";
import { startIngest, type CommitEvent, type Ingest, type IngestOptions } from "../../src/ingest/ingest";
import { setLogLevel } from "../../src/log";
import { expectMatchesHistory, sleep, testDb, until, type TestDb } from "./ingest.helpers";

let db: TestDb;
let feed: MockFeed | undefined;
let ingest: Ingest | undefined;

beforeAll(() => setLogLevel("silent"));
beforeEach(async () => {
  db = await testDb();
});
afterEach(async () => {
  await ingest?.close();
  await feed?.close();
  await db.close();
  ingest = feed = undefined;
});

async function lastIds(): Promise<Record<string, number>> {
  const [row] = await db.ds.query(`SELECT last_ids FROM ingest_checkpoints`);
  return row.last_ids;
}

function start(o: Partial<IngestOptions> = {}): Ingest {
  return (ingest = startIngest({ dataSource: db.ds, feedUrl: feed!.url, feedRestUrl: feed!.restUrl, ...o }));
}

const total = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

test.each(["msgpack", "json"] as const)(
  "over %s, under every fault: accepted + quarantined + duplicates = received, and the store equals the feed's history",
  async (format) => {
    feed = await startMockFeed({
      seed: 11,
      rate: 3000,
      symbols: 12,
      faults: "malformed=0.02,duplicate=0.02,outoforder=0.02,late=0.01,slow=0.05,disconnect=2500ms",
    });
    // Small REST pages: every backfill pages, and pages are merged across symbols in time order.
    const ing = start({ reconnect: { initialMs: 100, maxMs: 400 }, backfillPageSize: 40, format });
    await until(
      "two forced disconnects and 15,000 trades",
      () => (feed!.stats().disconnects >= 2 && ing.counts().accepted.trades > 15_000 ? true : undefined),
      60_000,
    );
    await ing.close();
    const c = ing.counts();
    const stats = feed.stats();

    const received = c.received.stream + c.received.backfill;
    expect(c.accepted.trades + c.accepted.quotes + total(c.rejected) + c.duplicates).toBe(received);
    expect(c.received.backfill).toBeGreaterThan(0); // the disconnects' gaps came over REST
    expect(c.duplicates).toBeGreaterThan(0);
    expect(c.unrecoverable).toBe(0);
    // Every malformed kind the feed injects was quarantined under a reason, never stored.
    for (const r of ["MALFORMED", "INVALID_PRICE", "UNKNOWN_SYMBOL", "LATE"])
      expect(c.rejected[r]).toBeGreaterThan(0);
    expect(total(c.rejected) - c.rejected.LATE).toBeLessThanOrEqual(stats.malformed);
    expect(c.rejected.LATE).toBeLessThanOrEqual(stats.late);

    const [{ quotes, quarantined }] = await db.ds.query(
      `SELECT (SELECT count(*) FROM quotes)::int AS quotes, (SELECT count(*) FROM quarantine)::int AS quarantined`,
    );
    expect(quotes).toBe(c.accepted.trades);
    expect(quarantined).toBe(total(c.rejected));
    const byReason: { reason: string; n: number }[] = await db.ds.query(
      `SELECT reason, count(*)::int AS n FROM quarantine GROUP BY reason`,
    );
    expect(Object.fromEntries(byReason.map((r) => [r.reason, r.n]))).toEqual(c.rejected);

    // Up to the checkpoint, exactly the feed's trades; past it (holes the close left open), only the feed's.
    const { stored, late, beyond, lateBeyond } = await expectMatchesHistory(db.ds, feed, await lastIds());
    expect(stored + beyond).toBe(c.accepted.trades);
    expect(late + lateBeyond).toBe(c.rejected.LATE);
    // Panes hold exactly the stored trades: no duplicate reached them.
    const [panes] = await db.ds.query(`SELECT sum(n)::int AS n, sum(volume)::float8 AS v FROM panes_10s`);
    const [sums] = await db.ds.query(`SELECT count(*)::int AS n, sum(size)::float8 AS v FROM quotes`);
    expect(panes).toEqual(sums);
  },
  90_000,
);

test("after a dropped connection the gap in trade ids is backfilled over REST before the stream goes on", async () => {
  feed = await startMockFeed({ seed: 12, rate: 2000, symbols: 8 });
  const ing = start({ reconnect: { initialMs: 800, maxMs: 800 } });
  await until("streaming", () =>
    ing.status().state === "streaming" && ing.counts().accepted.trades > 1000 ? true : undefined,
  );
  const before = ing.counts().received.backfill;
  feed.dropConnections();
  await until("a reconnect", () => (ing.status().state !== "streaming" ? true : undefined));
  await until("streaming again", () => (ing.status().state === "streaming" ? true : undefined));
  const atReconnect = ing.counts().accepted.trades;
  await until("more trades", () => (ing.counts().accepted.trades > atReconnect + 1000 ? true : undefined));
  await ing.close();
  const c = ing.counts();
  // ~0.4–0.8 s of trades at 2000/s went missing on the stream and came back over REST.
  expect(c.received.backfill - before).toBeGreaterThan(100);
  expect(c.unrecoverable).toBe(0);
  const { stored, beyond } = await expectMatchesHistory(db.ds, feed, await lastIds());
  expect(stored + beyond).toBe(c.accepted.trades);
});

test("when Postgres stalls, the socket is paused rather than buffered without bound, and nothing is lost", async () => {
  feed = await startMockFeed({ seed: 13, rate: 4000, symbols: 8 });
  const ing = start({ batchSize: 200, maxQueuedBytes: 64 * 1024 });
  await until("trades", () => (ing.counts().accepted.trades > 1000 ? true : undefined));
  const locker = new Client({ connectionString: db.url });
  await locker.connect();
  try {
    await locker.query("BEGIN");
    // Blocks every INSERT into quotes until COMMIT: the writer stalls with a batch in flight.
    await locker.query("LOCK TABLE quotes IN SHARE ROW EXCLUSIVE MODE");
    await until("the socket paused", () => (ing.counts().pauses > 0 ? true : undefined));
    // No batch can commit while the lock is held: the stream is held back, not stored or dropped.
    const stalled = ing.counts().accepted.trades;
    await sleep(300);
    expect(ing.counts().accepted.trades).toBe(stalled);
    await locker.query("COMMIT");
  } finally {
    await locker.end();
  }
  const resumed = ing.counts().accepted.trades;
  await until("catching up", () => (ing.counts().accepted.trades > resumed + 4000 ? true : undefined));
  await ing.close();
  expect(feed.stats().slowClients).toBe(0);
  const { stored, beyond } = await expectMatchesHistory(db.ds, feed, await lastIds());
  expect(stored + beyond).toBe(ing.counts().accepted.trades);
});

test("commit listeners hear every batch: the watermark, the panes that got new trades and the rows inserted", async () => {
  feed = await startMockFeed({ seed: 14, rate: 1000, symbols: 5, faults: "duplicate=0.05" });
  const events: CommitEvent[] = [];
  const early: CommitEvent[] = [];
  const ing = start({ batchSize: 100 });
  ing.onCommit((e) => events.push(e));
  const off = ing.onCommit((e) => early.push(e));
  ing.onCommit(() => {
    throw new Error("a broken listener must not stop ingest");
  });
  await until("trades", () => (ing.counts().accepted.trades > 1000 ? true : undefined));
  off();
  const heard = early.length;
  await until("more trades", () => (ing.counts().accepted.trades > 2500 ? true : undefined));
  await ing.close();
  expect(early.length).toBe(heard);
  expect(events.length).toBeGreaterThan(heard);

  const [{ n }] = await db.ds.query(`SELECT count(*)::int AS n FROM quotes`);
  expect(events.reduce((sum, e) => sum + e.inserted, 0)).toBe(n);
  const marks = events.map((e) => e.watermark?.getTime() ?? -Infinity);
  expect(marks).toEqual([...marks].sort((a, b) => a - b));
  const heardBuckets = [...new Set(events.flatMap((e) => e.buckets.map((b) => b.getTime())))].sort();
  const panes: { b: string }[] = await db.ds.query(
    `SELECT DISTINCT (extract(epoch FROM bucket) * 1000)::int8::text AS b FROM panes_10s ORDER BY 1`,
  );
  expect(heardBuckets).toEqual(panes.map((p) => Number(p.b)).sort());
  // Each event's panes are exactly those of the rows it hands over, and a batch that stored nothing new
  // (all repeats, or the checkpoint alone, as at close) names none.
  for (const e of events) {
    const rows = e.trades.flatMap((p) => p.time.map((time, k) => ({ time, id: p.id[k] })));
    expect(rows).toHaveLength(e.inserted);
    expect(e.buckets.map((b) => b.getTime())).toEqual(
      [...new Set(rows.map((r) => Math.floor(Date.parse(r.time) / 10_000) * 10_000))].sort((a, b) => a - b),
    );
  }
  expect(events.some((e) => e.inserted === 0)).toBe(true);
});
