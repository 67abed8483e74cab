import "reflect-metadata";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { DataSource } from "typeorm";
import { createDataSource, migrate } from "../src/db/data-source";
import { BatchWriter } from "../src/ingest/batch.writer";
import { CheckpointsRepo } from "../src/db/checkpoints.repo";
import { decodeServerFrame } from "../src/feed/protocol";
import { startIngest } from "../src/ingest/ingest";
import { StreamClient } from "../src/ingest/stream.client";
import { loadConfig } from "../src/config/config";
import { setLogLevel } from "../src/log";
import { benchDatabase, cpuSince, numericFlags, postgresCpu, procCpuMs, startChild } from "./support";

/**
 * `npm run bench:ingest`: the mock feed as its own process at rising rates, the ingest loop here, the
 * machine's Postgres underneath, the stream in FEED_FORMAT (msgpack unless `json`). First the writer alone
 * and the feed alone; then per rate: trades stored per second, whether lag stayed bounded, batch commit
 * p50/p99, peak RSS of this process, CPU per trade of each process; then the highest rate sustained.
 */
const flags = numericFlags({ seconds: 8, warmup: 3, symbols: 500, batch: 5000, connections: 2 });
const RATES = (process.env.BENCH_RATES ?? "10000,25000,50000,60000,75000,100000").split(",").map(Number);
/** The stream's encoding, as `serve` reads it (FEED_FORMAT). */
const FORMAT = loadConfig().feedFormat;
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

/** How fast the feed process alone delivers (the speed no test claims), with its CPU per trade. */
interface FeedAlone {
  offered: number;
  delivered: number;
  feedCpuUs: number;
}

/**
 * The feed as its own process at `rate` offered, one "*" subscriber in the bench's format (the ingest's
 * stream client, frames decoded and their trades counted, nothing stored): trades per second received
 * over the measured seconds, and the feed process's CPU per trade meanwhile.
 */
async function feedAlone(rate: number): Promise<FeedAlone> {
  const feed = await startChild(join(__dirname, "servers/feed.server.js"), {
    FEED_RATE: String(rate),
    FEED_SYMBOLS: String(flags.symbols),
    LOG_LEVEL: "warn",
  });
  let trades = 0;
  let ready = false;
  const client = new StreamClient({
    url: `ws://127.0.0.1:${feed.port}/v2/iex`,
    key: "tickgraph",
    secret: "tickgraph",
    format: FORMAT,
    onReady: () => (ready = true),
    onFrame: (frame) => {
      const decoded = decodeServerFrame(frame);
      if (decoded.ok) for (const m of decoded.items) if (m.ok && m.message.T === "t") trades++;
    },
    onDown: () => undefined,
  });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  client.start();
  while (!ready) await sleep(50);
  await sleep(flags.warmup * 1000);
  const t0 = performance.now();
  const n0 = trades;
  const cpu0 = procCpuMs(feed.proc.pid!);
  await sleep(flags.seconds * 1000);
  const n = trades - n0;
  const cpu = procCpuMs(feed.proc.pid!) - cpu0;
  const seconds = (performance.now() - t0) / 1000;
  await client.close();
  await feed.stop();
  return {
    offered: rate,
    delivered: Math.round(n / seconds),
    feedCpuUs: n > 0 ? Math.round((cpu * 1000 * 10) / n) / 10 : NaN,
  };
}

/** The writer alone on synthetic trades: what Postgres takes with this schema, the ceiling for ingest. */
async function writerAlone(ds: DataSource, seconds: number): Promise<number> {
  await ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
  let inserted = 0;
  const writer = new BatchWriter({
    dataSource: ds,
    stream: "bench",
    epoch: await new CheckpointsRepo(ds).claim("bench"),
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
          timeUs: timeMs * 1000,
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
  const alone = await feedAlone(Number(process.env.BENCH_FEED_RATE ?? 100_000));
  process.stdout.write(JSON.stringify({ format: FORMAT, feedAlone: alone }) + "\n");
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
      feedRestUrl: `http://127.0.0.1:${feed.port}`,
      format: FORMAT,
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
    const cpu0 = {
      feed: procCpuMs(feed.proc.pid!),
      ingest: process.cpuUsage(),
      postgres: await postgresCpu(ds),
    };
    await sleep(flags.seconds * 1000);
    const trades = ingest.counts().accepted.trades - a0;
    const stored = (trades * 1000) / (performance.now() - t0);
    const ingestCpu = process.cpuUsage(cpu0.ingest);
    const perTrade = (ms: number) => (trades > 0 ? Math.round((ms * 1000 * 10) / trades) / 10 : NaN);
    const cpuUs = {
      feed: perTrade(procCpuMs(feed.proc.pid!) - cpu0.feed),
      ingest: perTrade((ingestCpu.user + ingestCpu.system) / 1000),
      postgres: perTrade(cpuSince(cpu0.postgres, await postgresCpu(ds))),
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
      `stream format: ${FORMAT}`,
      `writer alone (synthetic trades, no feed): ${ceiling} rows/s`,
      `feed alone (one "*" subscriber, ${alone.offered} trades/s offered): ${alone.delivered} trades/s delivered, feed CPU ${alone.feedCpuUs} µs per trade`,
      `highest sustained rate: ${sustained.length ? Math.max(...sustained) : "none"} trades/s`,
      "",
    ].join("\n"),
  );
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
