import { Client } from "pg";
import { WATERMARK_DELAY_MS } from "../../src/core/market";
import { leaseKey } from "../../src/ingest/lease";
import type { PlatformOptions } from "../../src/platform";
import { startTestPlatform, type TestPlatform } from "./server";

/** The feed of a platform that never ingests: nothing listens there, and it never tries to reach it. */
const UNREACHED_FEED = "ws://127.0.0.1:9/v2/iex";

export interface ClockedPlatform extends TestPlatform {
  /** Moves the market clock on to `now` (it never goes back) and resolves once the platform sees it. */
  setMarketTime(now: Date): Promise<void>;
}

/**
 * A test platform whose market clock (what DELAY_SECONDS is measured against) the test sets. It is a
 * replica that does not ingest, the test holding the ingest lease, so its clock follows the committed
 * checkpoint (`ingest_checkpoints.watermark` + 2 s) as any follower's does, and the watermarks of window
 * events on the bus (with EVENT_BUS=postgres, what a test publishes there moves it too).
 */
export async function startPlatformAtMarketTime(
  now: Date,
  env: Record<string, string> = {},
  opts: PlatformOptions = {},
): Promise<ClockedPlatform> {
  let holder: Client | undefined;
  const watermark = (at: Date) => new Date(at.getTime() - WATERMARK_DELAY_MS);
  const t = await startTestPlatform(
    {
      INGEST: "on",
      FEED_URL: UNREACHED_FEED,
      FEED_KEY: "tickgraph",
      FEED_SECRET: "tickgraph",
      LEASE_RETRY_MS: "100",
      ...env,
    },
    opts,
    async (url) => {
      holder = new Client({ connectionString: url });
      // The database is dropped under it at close.
      holder.on("error", () => {});
      await holder.connect();
      await holder.query("SELECT pg_advisory_lock($1, $2)", leaseKey(UNREACHED_FEED));
      await holder.query(`INSERT INTO ingest_checkpoints (stream, watermark) VALUES ($1, $2)`, [
        UNREACHED_FEED,
        watermark(now),
      ]);
    },
  );
  if (t.platform.clock.now().getTime() !== now.getTime())
    throw new Error(`the platform's market clock is at ${t.platform.clock.now().toISOString()}`);
  return {
    ...t,
    async setMarketTime(at) {
      await holder!.query(`UPDATE ingest_checkpoints SET watermark = $2 WHERE stream = $1`, [
        UNREACHED_FEED,
        watermark(at),
      ]);
      const deadline = Date.now() + 30_000;
      while (t.platform.clock.now() < at) {
        if (Date.now() > deadline) throw new Error(`the market clock did not reach ${at.toISOString()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      await t.close();
      await holder!.end().catch(() => undefined);
    },
  };
}
