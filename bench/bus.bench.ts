import "reflect-metadata";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createClient } from "graphql-ws";
import { Client } from "pg";
import WebSocket from "ws";
import { withDatabase } from "../src/db/naming";
import { Role } from "../src/policy/principal";
import { mintToken } from "../src/policy/tokens";
import { ADMIN_URL, cpuSince, numericFlags, postgresCpu } from "./support";

// bench:bus — replica A ingests the embedded mock feed at `rate` trades/s and publishes its ticks on the
// bus; replica B (INGEST=off) serves quoteTicks subscribers on every symbol. Per bus and rate, over the
// trades A received in `seconds` after a `warmup`: stored per second, delivered on B per second (within
// `drain` s after the window), delivery latency (B's subscriber receives − A's ingest received the
// trade), Postgres CPU per stored trade, and how full Postgres's NOTIFY queue got.
const flags = numericFlags({ seconds: 10, warmup: 4, drain: 5, symbols: 100 });
const RATES = (process.env.BENCH_RATES ?? "2000,5000,10000,15000").split(",").map(Number);
const BUSES = (process.env.BENCH_BUSES ?? "postgres,nats").split(",");
const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const SECRET = "bench-secret-bench-secret-bench-secret!!";
const DB = "tickgraph_bench_bus";
const MAIN = join(__dirname, "../../bin/tickgraph.js");
const TICK = `subscription($s: [String!]!) { quoteTicks(symbols: $s) { receivedAt } }`;

async function admin<T>(run: (c: Client) => Promise<T>, url = ADMIN_URL): Promise<T> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return await run(c);
  } finally {
    await c.end();
  }
}

/** `tickgraph serve` as a process; resolves with its GraphQL URL once it serves. */
function serve(
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [MAIN, "serve", "--port", "0", ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    proc.once("exit", (code) => reject(new Error(`serve exited with ${code} before serving`)));
    // Its first warnings are shown, and all about the bus: a replica that falls behind says so.
    let shown = 0;
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const m = /serving GraphQL at (http:\/\/\S+)/.exec(line);
      if (m) resolve({ proc, url: m[1] });
      else if (/"level":[4-6]0/.test(line) && (/NATS|NOTIFY|LISTEN|bus/.test(line) || shown++ < 3))
        process.stderr.write(`  ${env.REPLICA_NAME}: ${line}\n`);
    });
  });
}

const stop = (proc: ChildProcess) =>
  new Promise<void>((done) => {
    proc.removeAllListeners("exit");
    if (proc.exitCode !== null || proc.signalCode !== null) return done();
    proc.once("exit", () => done());
    proc.kill("SIGTERM");
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  bus: string;
  rate: number;
  storedPerSec: number;
  deliveredPerSec: number;
  p50: number;
  p99: number;
  pgCpuUsPerTrade: number;
  notifyQueue: number;
  errors: number;
}

async function once(bus: string, rate: number): Promise<Row> {
  await admin(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${DB}`);
  });
  const url = withDatabase(ADMIN_URL, DB);
  const env = (replica: string, ingest: boolean) => ({
    DATABASE_URL: url,
    JWT_SECRET: SECRET,
    AUDIT_SECRET: SECRET,
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    NODE_ENV: "production",
    EVENT_BUS: bus,
    NATS_URL,
    NATS_SUBJECT: `tickgraph-bench.${process.pid}`,
    REPLICA_NAME: replica,
    INGEST: ingest ? "on" : "off",
    DATA_DIR: mkdtempSync(join(tmpdir(), `tickgraph-bench-${replica}-`)),
    MAX_SUBSCRIPTIONS_PER_PRINCIPAL: "1000",
    SUBSCRIPTION_QUEUE: "100000",
  });
  const feedArgs = ["--feed-rate", String(rate), "--feed-symbols", String(flags.symbols), "--feed-seed", "7"];
  // A first (it migrates and takes the lease, ingesting its embedded feed at `rate`); then B.
  const a = await serve(env("a", true), feedArgs);
  const b = await serve(env("b", false));
  const pg = new Client({ connectionString: url });
  await pg.connect();
  const q = async <T>(sql: string) => (await pg.query(sql)).rows as T[];
  try {
    await pg.query(
      `INSERT INTO grants (principal, entitlement, granted_by) VALUES ('bench', 'REALTIME', 'bench-owner')`,
    );
    const token = await mintToken(SECRET, "bench", [Role.USER, Role.CUSTODIAN], 3600);
    const gql = async <T>(query: string) =>
      (
        (await (
          await fetch(b.url, {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
            body: JSON.stringify({ query }),
          })
        ).json()) as { data: T }
      ).data;
    const symbols = (
      await gql<{ instruments: { symbol: string }[] }>(`{ instruments { symbol } }`)
    ).instruments.map((i) => i.symbol);
    const client = createClient({
      url: b.url.replace(/^http/, "ws"),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
    });
    // Ticks A received from the feed within [t0, t1) count; each is delivered when B's subscriber gets it
    // within `drain` s after t1 (later, or never, it is not).
    let t0 = Infinity;
    let t1 = Infinity;
    let errors = 0;
    const latencies: number[] = [];
    const groups = Array.from({ length: Math.ceil(symbols.length / 25) }, (_, k) =>
      symbols.slice(k * 25, k * 25 + 25),
    );
    const unsubscribe = groups.map((s) =>
      client.subscribe<{ quoteTicks: { receivedAt: string } }>(
        { query: TICK, variables: { s } },
        {
          next: (e) => {
            if (e.errors || !e.data) return void errors++;
            const received = Date.parse(e.data.quoteTicks.receivedAt);
            if (received >= t0 && received < t1) latencies.push(Date.now() - received);
          },
          error: () => errors++,
          complete: () => undefined,
        },
      ),
    );
    // At start A backfills what the feed traded before it connected (at high rates for many seconds):
    // the warm-up starts once it stores at a quarter of the feed's rate or more.
    const count = async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM quotes`))[0].n;
    for (let k = 0, last = await count(); ; k++) {
      await sleep(1000);
      const now = await count();
      if (now - last >= rate / 4) break;
      if (k > 120) throw new Error(`${bus} at ${rate}/s: A never stored a quarter of the feed's rate`);
      last = now;
    }
    await sleep(flags.warmup * 1000);
    const cpu0 = await postgresCpu({ query: q });
    t0 = Date.now();
    t1 = t0 + flags.seconds * 1000;
    let notifyQueue = 0;
    while (Date.now() < t1) {
      await sleep(Math.min(1000, t1 - Date.now()));
      const [{ u }] = await q<{ u: number }>(`SELECT pg_notification_queue_usage() AS u`);
      notifyQueue = Math.max(notifyQueue, u);
    }
    const pgCpu = cpuSince(cpu0, await postgresCpu({ query: q }));
    await sleep(flags.drain * 1000);
    unsubscribe.forEach((u) => u());
    await client.dispose();
    const [{ n: stored }] = await q<{ n: number }>(
      `SELECT count(*)::int AS n FROM quotes WHERE received_at >= to_timestamp(${t0} / 1000.0) AND received_at < to_timestamp(${t1} / 1000.0)`,
    );
    const sorted = latencies.sort((x, y) => x - y);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
    return {
      bus,
      rate,
      storedPerSec: stored / flags.seconds,
      deliveredPerSec: latencies.length / flags.seconds,
      p50: pct(0.5),
      p99: pct(0.99),
      pgCpuUsPerTrade: stored ? (pgCpu * 1000) / stored : NaN,
      notifyQueue,
      errors,
    };
  } finally {
    await pg.end();
    await stop(b.proc);
    await stop(a.proc);
  }
}

async function main() {
  const rows: Row[] = [];
  for (const rate of RATES)
    for (const bus of BUSES) {
      process.stdout.write(`${bus} at ${rate.toLocaleString()} trades/s… `);
      const row = await once(bus, rate);
      rows.push(row);
      process.stdout.write(
        `delivered ${Math.round(row.deliveredPerSec).toLocaleString()}/s, p99 ${row.p99} ms\n`,
      );
    }
  const f = (n: number, d = 0) =>
    Number.isFinite(n)
      ? n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d })
      : "–";
  console.log(
    `\nbus       feed/s   stored/s  delivered/s  delivered/stored  p50 ms  p99 ms  Postgres CPU µs/trade  NOTIFY queue  errors`,
  );
  for (const r of rows)
    console.log(
      [
        r.bus.padEnd(8),
        f(r.rate).padStart(7),
        f(r.storedPerSec).padStart(10),
        f(r.deliveredPerSec).padStart(12),
        f(r.deliveredPerSec / r.storedPerSec, 2).padStart(17),
        f(r.p50).padStart(7),
        f(r.p99).padStart(7),
        f(r.pgCpuUsPerTrade, 1).padStart(22),
        `${(r.notifyQueue * 100).toFixed(2)}%`.padStart(13),
        String(r.errors).padStart(7),
      ].join(" "),
    );
  // Postgres vs NATS at each rate: where NOTIFY stops keeping up, delivery falls behind storage first.
  for (const rate of RATES) {
    const pg = rows.find((r) => r.bus === "postgres" && r.rate === rate);
    const nats = rows.find((r) => r.bus === "nats" && r.rate === rate);
    if (pg && nats)
      console.log(
        `at ${f(rate)}/s: Postgres delivers ${f(pg.deliveredPerSec / pg.storedPerSec, 2)} of what is stored, NATS ${f(nats.deliveredPerSec / nats.storedPerSec, 2)}; p99 Postgres/NATS ${f(pg.p99 / nats.p99, 1)}x; Postgres CPU per trade Postgres/NATS ${f(pg.pgCpuUsPerTrade / nats.pgCpuUsPerTrade, 2)}x`,
      );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
