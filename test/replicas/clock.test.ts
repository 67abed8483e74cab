import { startMockFeed, type MockFeed } from "../../src/feed";
import { setLogLevel } from "../../src/log";
import { startPlatform, type Platform } from "../../src/platform";
import { createTestDatabase } from "../support/database";
import { testConfig } from "../support/server";
import { until } from "../ingest/ingest.helpers";
import { busEnv, SHARED_BUSES } from "../support/buses";

// Two replicas in this process on one database, the feed beside them: the market clock of the one
// that does not ingest follows the one that does, and stays monotonic when it takes over.
describe.each(SHARED_BUSES)("over %s", (kind) => {
  let feed: MockFeed;
  let db: { url: string; drop(): Promise<void> };
  const platforms: Platform[] = [];

  beforeAll(async () => {
    setLogLevel("silent");
    feed = await startMockFeed({ seed: 9, rate: 300, symbols: 5, speed: 60, start: "2026-01-05T14:29:00Z" });
    db = await createTestDatabase();
  });
  afterAll(async () => {
    for (const p of platforms) await p.close();
    await feed.close();
    await db.drop();
  });

  const bus = busEnv(kind);
  async function replica(name: string): Promise<Platform> {
    const config = testConfig(db.url, {
      FEED_URL: feed.url,
      FEED_KEY: "tickgraph",
      FEED_SECRET: "tickgraph",
      ...bus,
      REPLICA_NAME: name,
      LEASE_RETRY_MS: "200",
    });
    const p = await startPlatform(config);
    platforms.push(p);
    return p;
  }

  test("a follower's market clock follows the ingest's watermark, and goes on from there when it takes over", async () => {
    const a = await replica("a");
    const b = await replica("b");
    expect(a.ingest).not.toBeNull();
    expect(b.ingest).toBeNull();
    expect(b.feed).toBeNull();

    // The feed's simulated market started at 14:29; wall time is far from it, so a clock that fell back to
    // wall time would show.
    const marketStart = Date.parse("2026-01-05T14:29:00Z");
    const w0 = await until("A commits", () => a.ingest!.status().watermark ?? undefined);
    // Before anything is committed B can only fall back to wall time, which is far ahead of this market.
    await until("B's clock follows A's", () => {
      const seen = b.clock.now();
      return seen >= w0 && seen <= a.clock.now() ? true : undefined;
    });
    for (let k = 0; k < 5; k++) {
      // Read B first: what B has seen, A had already reached.
      const seenByB = b.clock.now().getTime();
      expect(seenByB).toBeGreaterThanOrEqual(marketStart);
      expect(seenByB).toBeLessThanOrEqual(a.clock.now().getTime());
      expect(seenByB).toBeLessThanOrEqual(feed.clock().getTime());
      await new Promise((r) => setTimeout(r, 100));
    }

    const before = b.clock.now().getTime();
    await a.close();
    await until("B takes over", () => (b.ingest ? true : undefined));
    expect(b.clock.now().getTime()).toBeGreaterThanOrEqual(before);
    await until("B's own ingest moves its clock on", () =>
      (b.ingest!.status().watermark?.getTime() ?? 0) > before ? true : undefined,
    );
    expect(b.clock.now().getTime()).toBeGreaterThan(before);
    expect(b.clock.now().getTime()).toBeLessThanOrEqual(feed.clock().getTime());
  });
});
