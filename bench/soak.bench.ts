import "reflect-metadata";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import autocannon from "autocannon";
import { createClient, type Client as WsClient } from "graphql-ws";
import { Client } from "pg";
import WebSocket from "ws";
import { withDatabase } from "../src/db/naming";
import { Role } from "../src/policy/principal";
import { mintToken } from "../src/policy/tokens";
import { ADMIN_URL, benchFlags, procCpuMs } from "./support";

// bench:soak — `serve` as a user runs it, with the embedded feed at a fast market, under a steady mix of
// HTTP queries and graphql-ws subscriptions for `--minutes`: RSS, heap, latency, events and errors every
// `--sample` seconds, and how RSS and heap at the end compare with a mark (10 min into a run of 20 min or
// more, else `--warmup` min). `--snapshots DIR` writes a heap snapshot at the mark and at the end
// (compare them with `node dist/bench/heap-diff.cli.js A B`).
const flags = benchFlags({
  minutes: 5,
  warmup: 1,
  sample: 15,
  connections: 20,
  /** HTTP requests per second over all connections; 0 = as fast as they answer. */
  reqrate: 200,
  /** graphql-ws connections; each opens the five subscriptions below. */
  sockets: 20,
  speed: 60,
  rate: 500,
  symbols: 50,
  /** "embedded" (a fresh data dir) or "postgres" (a fresh database on DATABASE_URL's server). */
  db: "embedded",
  snapshots: "",
});
const SECRET = "soak-bench-secret-soak-bench-secret!!";
const ROOT = resolve(__dirname, "..", "..");
const KNOWN = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "JPM", "V", "UNH"];
const sym = (i: number) => KNOWN[i % KNOWN.length];

/** The HTTP mix: reads a screen or a notebook makes, over the symbols in turn. */
function bodies(): string[] {
  const out: string[] = [];
  for (let i = 0; i < KNOWN.length; i++) {
    const s = JSON.stringify(sym(i));
    for (const query of [
      `{ latestQuotes(symbols: [${s}]) { symbol price eventTime delayed } }`,
      `{ quotes(symbols: [${s}], first: 50) { nodes { symbol eventTime seq price size } } }`,
      `{ windowAggregates(size: ONE_MINUTE, symbols: [${s}], first: 20) { nodes { symbol windowEnd open close volume } } }`,
      `{ topSymbols(size: FIVE_MINUTES, limit: 5) { windowEnd entries { rank symbol value } } }`,
      `{ topMovers(limit: 5, size: ONE_MINUTE) { asOf gainers { symbol changePercent } losers { symbol changePercent } } }`,
      `{ instrument(symbol: ${s}) { symbol name sector } }`,
    ])
      out.push(JSON.stringify({ query }));
  }
  return out;
}

const SUBSCRIPTIONS = (i: number): { query: string; variables?: Record<string, unknown> }[] => [
  {
    query: `subscription($s: [String!]!) { quoteTicks(symbols: $s) { symbol eventTime price size } }`,
    variables: { s: [sym(i), sym(i + 3), sym(i + 7)] },
  },
  { query: `subscription { windowAggregates(size: ONE_MINUTE) { symbol windowEnd close volume } }` },
  { query: `subscription { topSymbols(size: ONE_MINUTE) { windowEnd entries { rank symbol value } } }` },
  { query: `subscription { topPriceStock { windowEnd entries { symbol value } } }` },
  { query: `subscription { topMovers(limit: 5, size: ONE_MINUTE) { asOf gainers { symbol } } }` },
];

/** The database a `--db postgres` run starts fresh in, dropped at its end. */
const SOAK_DB = "tickgraph_soak";

async function admin(fn: (c: Client) => Promise<unknown>): Promise<void> {
  const c = new Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    await fn(c);
  } finally {
    await c.end();
  }
}

const dropSoakDatabase = () => admin((c) => c.query(`DROP DATABASE IF EXISTS "${SOAK_DB}" WITH (FORCE)`));

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function heapMb(base: string): Promise<{ used: number; total: number; external: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const read = (name: string) =>
    Number(new RegExp(`^tickgraph_${name} (\\S+)`, "m").exec(text)?.[1]) / 2 ** 20;
  return {
    used: read("nodejs_heap_size_used_bytes"),
    total: read("nodejs_heap_size_total_bytes"),
    external: read("nodejs_external_memory_bytes"),
  };
}

/** Least-squares slope of `ys` over `xs`. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den ? num / den : NaN;
}

interface Sample {
  min: number;
  rss: number;
  heap: number;
  heapTotal: number;
  external: number;
  reqs: number;
  p50: number;
  p99: number;
  max: number;
  httpErrors: number;
  events: number;
  wsErrors: number;
  cpu: number;
}

async function main(): Promise<void> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), "tickgraph-soak-"));
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: "127.0.0.1",
    DATA_DIR: dataDir,
    JWT_SECRET: SECRET,
    LOG_LEVEL: "warn",
    MAX_CONNECTIONS_PER_PRINCIPAL: "100000",
    MAX_SUBSCRIPTIONS_PER_PRINCIPAL: "100000",
  };
  if (flags.db === "postgres") {
    await dropSoakDatabase();
    await admin((c) => c.query(`CREATE DATABASE "${SOAK_DB}"`));
    env.DATABASE_URL = withDatabase(ADMIN_URL, SOAK_DB);
  } else if (flags.db !== "embedded") throw new Error(`--db must be embedded or postgres`);
  else delete process.env.DATABASE_URL;
  const nodeArgs: string[] = [];
  if (flags.snapshots) {
    mkdirSync(flags.snapshots, { recursive: true });
    nodeArgs.push("--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${resolve(flags.snapshots)}`);
  }
  const serveArgs = [
    join(ROOT, "bin", "tickgraph.js"),
    "serve",
    "--feed-speed",
    String(flags.speed),
    "--feed-rate",
    String(flags.rate),
    "--feed-symbols",
    String(flags.symbols),
  ];
  const proc = spawn(process.execPath, [...nodeArgs, ...serveArgs], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  let alive = true;
  void exited.then(() => (alive = false));
  const pid = proc.pid!;
  console.log(
    `bench:soak: serve (${flags.db === "postgres" ? "DATABASE_URL" : "embedded Postgres"}) --feed-speed ${flags.speed} --feed-rate ${flags.rate} --feed-symbols ${flags.symbols}; ` +
      `${flags.connections} HTTP connections at ${flags.reqrate || "unbounded"} req/s, ${flags.sockets} graphql-ws connections × 5 subscriptions; ${flags.minutes} min`,
  );

  try {
    for (let i = 0; ; i++) {
      if (!alive) throw new Error("serve exited before it was ready");
      const ok = await fetch(`${base}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (i > 600) throw new Error("serve was not ready within 60 s");
      await sleep(100);
    }
    const alice = await mintToken(SECRET, "alice", [Role.USER], 24 * 3600);
    const bob = await mintToken(SECRET, "bob", [Role.USER], 24 * 3600);

    // Subscribers: half of them entitled to real time (alice), half delayed (bob).
    let events = 0;
    let wsErrors = 0;
    const clients: WsClient[] = [];
    for (let i = 0; i < flags.sockets; i++) {
      const client = createClient({
        url: `ws://127.0.0.1:${port}/graphql`,
        webSocketImpl: WebSocket,
        lazy: false,
        retryAttempts: 0,
        connectionParams: { authorization: `Bearer ${i % 2 ? bob : alice}` },
        onNonLazyError: () => void wsErrors++,
      });
      clients.push(client);
      for (const sub of SUBSCRIPTIONS(i))
        client.subscribe(sub, {
          next: (r) => (r.errors?.length ? (wsErrors += r.errors.length) : events++),
          error: () => void wsErrors++,
          complete: () => undefined,
        });
    }

    const requests = bodies();
    let k = 0;
    const samples: Sample[] = [];
    const started = Date.now();
    const end = started + flags.minutes * 60_000;
    const markMin = flags.minutes >= 20 ? 10 : flags.warmup;
    let snappedAtMark = false;
    let cpuBefore = procCpuMs(pid);
    console.log(
      "\n  min   RSS MB  heap MB (total)  ext MB  req/s  p50 ms  p99 ms  max ms  http err  events/s  ws err  CPU %",
    );
    // The last interval may run up to half a sample long rather than leave a stub of a few seconds.
    while (end - Date.now() > (flags.sample * 1000) / 2 && alive) {
      const left = Math.round((end - Date.now()) / 1000);
      const seconds = left < flags.sample * 1.5 ? left : flags.sample;
      const eventsBefore = events;
      const wsErrorsBefore = wsErrors;
      const t0 = Date.now();
      let graphqlErrors = 0;
      const r = await autocannon({
        url: `${base}/graphql`,
        connections: flags.connections,
        duration: seconds,
        ...(flags.reqrate ? { overallRate: flags.reqrate } : {}),
        method: "POST",
        headers: { "content-type": "application/json" },
        requests: [
          {
            setupRequest: (req) => {
              const i = k++;
              return {
                ...req,
                headers: { ...req.headers, authorization: `Bearer ${i % 3 ? alice : bob}` },
                body: requests[i % requests.length],
              };
            },
            onResponse: (status, body) => {
              if (status < 300 && body.includes('"errors"')) graphqlErrors++;
            },
          },
        ],
      });
      const wall = (Date.now() - t0) / 1000;
      const cpuNow = procCpuMs(pid);
      const heap = await heapMb(base);
      const s: Sample = {
        min: (Date.now() - started) / 60_000,
        rss: rssMb(pid),
        heap: heap.used,
        heapTotal: heap.total,
        external: heap.external,
        reqs: r.requests.total / wall,
        p50: r.latency.p50,
        p99: r.latency.p99,
        max: r.latency.max,
        httpErrors: r.errors + r.timeouts + r.non2xx + graphqlErrors,
        events: (events - eventsBefore) / wall,
        wsErrors: wsErrors - wsErrorsBefore,
        cpu: ((cpuNow - cpuBefore) / (wall * 1000)) * 100,
      };
      cpuBefore = cpuNow;
      samples.push(s);
      console.log(
        `${s.min.toFixed(1).padStart(5)}  ${s.rss.toFixed(0).padStart(7)}  ${s.heap.toFixed(0).padStart(7)} (${s.heapTotal.toFixed(0).padStart(4)})  ${s.external.toFixed(0).padStart(6)}  ` +
          `${s.reqs.toFixed(0).padStart(5)}  ${String(s.p50).padStart(6)}  ${String(s.p99).padStart(6)}  ${String(s.max).padStart(6)}  ` +
          `${String(s.httpErrors).padStart(8)}  ${s.events.toFixed(0).padStart(8)}  ${String(s.wsErrors).padStart(6)}  ${s.cpu.toFixed(0).padStart(5)}`,
      );
      if (flags.snapshots && !snappedAtMark && s.min >= markMin) {
        snappedAtMark = true;
        proc.kill("SIGUSR2");
        console.log(`        (heap snapshot at the mark written to ${flags.snapshots})`);
      }
    }
    if (!alive) throw new Error("serve exited during the run");
    if (flags.snapshots) {
      proc.kill("SIGUSR2");
      console.log(`        (heap snapshot at the end written to ${flags.snapshots})`);
      await sleep(5000);
    }
    for (const c of clients) await c.dispose();

    const at = samples.find((s) => s.min >= markMin) ?? samples[0];
    const last = samples[samples.length - 1];
    const after = samples.filter((s) => s.min >= at.min);
    const xs = after.map((s) => s.min);
    const all = samples.filter((s) => s.min >= markMin);
    const sum = (f: (s: Sample) => number) => all.reduce((a, s) => a + f(s), 0);
    console.log(
      `\nmark at ${at.min.toFixed(1)} min (${flags.minutes >= 20 ? "10 min" : `warm-up, --warmup ${flags.warmup}`}), end at ${last.min.toFixed(1)} min:`,
    );
    console.log(
      `  RSS ${at.rss.toFixed(0)} → ${last.rss.toFixed(0)} MB, ratio end/mark ${(last.rss / at.rss).toFixed(3)}, ` +
        `slope after the mark ${slope(
          xs,
          after.map((s) => s.rss),
        ).toFixed(2)} MB/min`,
    );
    // Heap used is a sawtooth between collections: compare its lows, over the samples of the minute up
    // to the mark and of the last minute.
    const low = (from: number, to: number) =>
      Math.min(...samples.filter((s) => s.min >= from - 1e-9 && s.min <= to + 1e-9).map((s) => s.heap));
    const lowAtMark = low(at.min - 1, at.min);
    const lowAtEnd = low(last.min - 1, last.min);
    console.log(
      `  heap used, lowest sample of the minute: ${lowAtMark.toFixed(0)} MB to the mark → ${lowAtEnd.toFixed(0)} MB at the end, ` +
        `ratio ${(lowAtEnd / lowAtMark).toFixed(3)}`,
    );
    console.log(
      `  after the mark: ${(sum((s) => s.reqs) / all.length).toFixed(0)} req/s, p99 ${Math.min(...all.map((s) => s.p99))}–${Math.max(...all.map((s) => s.p99))} ms per interval, ` +
        `${sum((s) => s.httpErrors)} HTTP errors, ${(sum((s) => s.events) / all.length).toFixed(0)} events/s, ${sum((s) => s.wsErrors)} subscription errors`,
    );
  } finally {
    if (alive) {
      proc.kill("SIGTERM");
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
    if (flags.db === "postgres") await dropSoakDatabase();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
