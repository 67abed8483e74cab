import { setLogLevel } from "../../src/log";
import { startPlatform } from "../../src/platform";
import { createTestDatabase } from "../support/database";
import { testConfig } from "../support/server";
import { until } from "./ingest.helpers";

beforeAll(() => setLogLevel("silent"));

test("serve without FEED_URL runs the embedded feed; a restart continues the numbering instead of colliding", async () => {
  const db = await createTestDatabase();
  const config = testConfig(db.url);
  const seqs = async (p: Awaited<ReturnType<typeof startPlatform>>) =>
    (
      await p.db.dataSource.query(
        `SELECT count(*)::int AS n, (SELECT count(*)::int FROM instruments) AS instruments,
                coalesce(max(seq), 0)::int AS max FROM quotes WHERE symbol = 'AAPL'`,
      )
    )[0] as { n: number; instruments: number; max: number };
  let before = { n: 0, instruments: 0, max: 0 };
  try {
    const first = await startPlatform(config, { feed: { seed: 4, rate: 1000, symbols: 20 } });
    try {
      expect(first.feed).not.toBeNull();
      await until("trades", () => (first.ingest!.counts().accepted.trades > 500 ? true : undefined));
      expect(first.ingest!.status().state).toBe("streaming");
      expect(first.ingest!.clock.now().getTime()).toBeLessThanOrEqual(first.feed!.clock().getTime());
      await first.ingest!.close();
      before = await seqs(first);
    } finally {
      await first.close();
    }
    expect(before.instruments).toBe(20);

    const second = await startPlatform(config, { feed: { seed: 4, rate: 1000, symbols: 20 } });
    try {
      // The same seed makes the same ids again: stored after the first run's, not dropped as duplicates.
      await until("new AAPL trades", async () => ((await seqs(second)).n > before.n + 50 ? true : undefined));
      const after = await seqs(second);
      expect(after.max).toBe(before.max + (after.n - before.n));
    } finally {
      await second.close();
    }
  } finally {
    await db.drop();
  }
});
