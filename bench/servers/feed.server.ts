import { startMockFeed } from "../../src/feed";

/** The mock feed in a process of its own, so that generating the market does not share a core with ingest. */
async function main(): Promise<void> {
  const feed = await startMockFeed({
    rate: Number(process.env.FEED_RATE ?? 1000),
    symbols: Number(process.env.FEED_SYMBOLS ?? 500),
    seed: Number(process.env.FEED_SEED ?? 1),
    maxBufferedBytes: 512 * 1024 * 1024,
  });
  process.stdout.write(JSON.stringify({ port: feed.port }) + "\n");
  process.on("SIGTERM", () => void feed.close().then(() => process.exit(0)));
}

void main();
