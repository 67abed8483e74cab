import "reflect-metadata";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { DataSource } from "typeorm";
import { createDataSource, migrate } from "../src/db/data-source";
import { BatchWriter, claimStream } from "../src/ingest/batch.writer";
import { startIngest } from "../src/ingest/ingest";
import { setLogLevel } from "../src/log";
import { benchDatabase, numericFlags, postgresCpuMs, procCpuMs, startChild } from "./support";

/**
 * `npm run bench:ingest`: the mock feed as its own process at rising rates, the ingest loop here, the
 * machine's Postgres underneath. Per rate: trades stored per second, whether lag stayed bounded, batch
 * commit p50/p99, peak RSS of this process; then the highest rate sustained.
 */
const flags = numericFlags({ seconds: 8, warmup: 3, symbols: 500, batch: 5000, connections: 2 });
const RATES = (process.env.BENCH_RATES ?? "10000,25000,50000,60000,75000,100000").split(",").map(Number);
/** Lag under this (ms) at the end of a step counts as bounded: the ingest keeps up with the feed. */
const LAG_BOUND_MS = 2000;
/** Longest wait, after the initial backfill, for the stream to catch up before the warm-up starts. */
const CATCH_UP_MS = 20_000;

interface Step {
  rate: number;
  /** From connecting to a live stream: the initial backfill of what the feed made before. */
  backfillSeconds: number;
  stored: number;
  lagEndMs: number;
  lagMaxMs: number;
  bounded: boolean;
  p50: number;
  p99: number;
  batches: number;
  meanBatch: number;
  rssMb: number;
  /** Peak JS heap in use plus buffers outside it. */
  heapMb: number;
  /** CPU µs per stored trade while measuring: the feed process, this (ingest) process, Postgres. */
  cpuUs: { feed: number; ingest: number; postgres: number };
}

/** The writer alone on synthetic trades: what Postgres takes with this schema, the ceiling for ingest. */
async function writerAlone(ds: DataSource, seconds: number): Promise<number> {
  await ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
  let inserted = 0;
  const writer = new BatchWriter({
    dataSource: ds,
    stream: "bench",
    epoch: await claimStream(ds, "bench"),
    batchSize: flags.batch,
    connections: flags.connections,
    checkpoint: () => ({ lastIds: {}, watermarkMs: null }),
    onCommitted: (r) => (inserted += r.inserted),
  });
  const t0 = performance.now();
  const start = Date.now();
  for (let id = 1; performance.now() - t0 < seconds * 1000; id++) {
    for (let s = 0; s < flags.symbols; s++) {
      const timeMs = start + id * 10 + s;
      writer.addTrade(
        {
          symbol: `S${s}`,
          id,
          time: new Date(timeMs).toISOString(),
          timeMs,
          price: 100 + (id % 13) / 100,
          size: 100,
          exchange: "V",
          bid: 99.99,
          bidSize: 3,
          ask: 100.01,
          askSize: 2,
        },
        Date.now(),
        "feed",
      );
      const wait = writer.room();
      if (wait) await wait;
    }
  }
  await writer.close();
  return Math.round((inserted * 1000) / (performance.now() - t0));
}

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
}

async function main(): Promise<void> {
  setLogLevel(process.env.LOG_LEVEL ?? "warn");
  const url = await benchDatabase("tickgraph_bench_ingest");
  const ds = createDataSource({ url, statementTimeoutMs: 60_000, poolSize: 4 });
  await ds.initialize();
  await migrate(ds);
  const ceiling = await writerAlone(ds, 5);
  process.stdout.write(JSON.stringify({ writerAloneRowsPerSecond: ceiling }) + "\n");
  const steps: Step[] = [];
  for (const rate of RATES) {
    await ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
    const feed = await startChild(join(__dirname, "servers/feed.server.js"), {
      FEED_RATE: String(rate),
      FEED_SYMBOLS: String(flags.symbols),
      LOG_LEVEL: "warn",
    });
    const commits: number[] = [];
    const sizes: number[] = [];
    let measuring = false;
    const ingest = startIngest({
      dataSource: ds,
      feedUrl: `ws://127.0.0.1:${feed.port}/v2/iex`,
      batchSize: flags.batch,
      writerConnections: flags.connections,
      maxQueuedBytes: 32 * 1024 * 1024,
      // As `serve` runs it while no one subscribes to quoteTicks: new rows are not sent back.
      wantTrades: () => false,
      onBatch: (r) => {
        if (!measuring) return;
        commits.push(r.seconds * 1000);
        sizes.push(r.trades);
      },
    });
    let rss = 0;
    let heap = 0;
    const lags: number[] = [];
    const sampler = setInterval(() => {
      const mem = process.memoryUsage();
      rss = Math.max(rss, mem.rss);
      heap = Math.max(heap, mem.heapUsed + mem.external + mem.arrayBuffers);
      if (measuring) lags.push(ingest.status().lagMs ?? Infinity);
    }, 250);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // The first connection backfills over REST what the feed made before it, while the stream waits:
    // a one-off catch-up. The warm-up starts once the stream is live and what queued meanwhile is
    // drained (lag under half the bound), or after CATCH_UP_MS if it never is.
    const connected = performance.now();
    while (ingest.status().state !== "streaming") await sleep(50);
    const backfillSeconds = Math.round(performance.now() - connected) / 1000;
    const live = performance.now();
    while (
      !((ingest.status().lagMs ?? Infinity) < LAG_BOUND_MS / 2) &&
      performance.now() - live < CATCH_UP_MS
    )
      await sleep(50);
    await sleep(flags.warmup * 1000);
    measuring = true;
    const t0 = performance.now();
    const a0 = ingest.counts().accepted.trades;
    const cpu0 = { feed: procCpuMs(feed.proc.pid!), ingest: process.cpuUsage(), postgres: postgresCpuMs() };
    await sleep(flags.seconds * 1000);
    const trades = ingest.counts().accepted.trades - a0;
    const stored = (trades * 1000) / (performance.now() - t0);
    const ingestCpu = process.cpuUsage(cpu0.ingest);
    const perTrade = (ms: number) => (trades > 0 ? Math.round((ms * 1000 * 10) / trades) / 10 : NaN);
    const cpuUs = {
      feed: perTrade(procCpuMs(feed.proc.pid!) - cpu0.feed),
      ingest: perTrade((ingestCpu.user + ingestCpu.system) / 1000),
      postgres: perTrade(postgresCpuMs() - cpu0.postgres),
    };
    measuring = false;
    clearInterval(sampler);
    await ingest.close();
    await feed.stop();
    commits.sort((x, y) => x - y);
    const tail = lags.slice(Math.floor((lags.length * 2) / 3));
    const step: Step = {
      rate,
      backfillSeconds,
      stored: Math.round(stored),
      lagEndMs: Math.round(lags[lags.length - 1] ?? Infinity),
      lagMaxMs: Math.round(Math.max(...lags)),
      bounded: tail.length > 0 && Math.max(...tail) <= LAG_BOUND_MS,
      p50: Math.round(quantile(commits, 0.5) * 10) / 10,
      p99: Math.round(quantile(commits, 0.99) * 10) / 10,
      batches: commits.length,
      meanBatch: Math.round(sizes.reduce((x, y) => x + y, 0) / Math.max(1, sizes.length)),
      rssMb: Math.round(rss / 2 ** 20),
      heapMb: Math.round(heap / 2 ** 20),
      cpuUs,
    };
    steps.push(step);
    process.stdout.write(JSON.stringify(step) + "\n");
  }
  await ds.destroy();
  const sustained = steps.filter((s) => s.bounded && s.stored >= 0.95 * s.rate).map((s) => s.rate);
  process.stdout.write(
    [
      "",
      "| offered trades/s | initial backfill s | stored trades/s | lag bounded (end / max ms) | batch commit p50 / p99 ms | batches (mean rows) | peak RSS / heap MB | CPU µs per trade: feed / ingest / Postgres |",
      "|---:|---:|---:|---|---:|---:|---:|---:|",
      ...steps.map(
        (s) =>
          `| ${s.rate} | ${s.backfillSeconds} | ${s.stored} | ${s.bounded ? "yes" : "no"} (${s.lagEndMs} / ${s.lagMaxMs}) | ${s.p50} / ${s.p99} | ${s.batches} (${s.meanBatch}) | ${s.rssMb} / ${s.heapMb} | ${s.cpuUs.feed} / ${s.cpuUs.ingest} / ${s.cpuUs.postgres} |`,
      ),
      "",
      `writer alone (synthetic trades, no feed): ${ceiling} rows/s`,
      `highest sustained rate: ${sustained.length ? Math.max(...sustained) : "none"} trades/s`,
      "",
    ].join("\n"),
  );
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
