import "reflect-metadata";
import { fork, type ChildProcess } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { Client } from "pg";
import { createDataSource, migrate } from "../src/db/data-source";
import { Role } from "../src/policy/principal";
import { mintToken } from "../src/policy/tokens";
import { seedWindows } from "../test/support/seed";
import { summariseProfile } from "./profile";
import type { ClientCommand, ClientReport } from "./servers/fanout.clients";
import type { ServerCommand, ServerReport } from "./servers/fanout.protocol";
import { benchDatabase, monotonicUs, numericFlags } from "./support";

// bench:fanout — N subscribers (one connection each, in a separate process) to one ranking topic at
// `rate` events/s, then to quoteTicks spread over `symbols` symbols: deliveries/s, publish-to-receive
// p50/p99, server CPU and peak RSS.
const flags = numericFlags({
  rate: 5,
  seconds: 20,
  warmup: 5,
  symbols: 100,
  ticks: 10_000,
  clients: 2,
  perConnection: 1,
  floor: 1,
});
const SUBSCRIBERS = (process.env.BENCH_SUBSCRIBERS ?? "1000,5000,10000").split(",").map(Number);
const SECRET = "bench-secret-bench-secret-bench-secret!!";
const TOP = `subscription { topSymbols(size: ONE_MINUTE, limit: 3) { windowEnd entries { rank symbol value } } }`;
const TICK = `subscription($s: [String!]!) { quoteTicks(symbols: $s) { symbol eventTime price size } }`;
const symbolName = (i: number) => `S${String(i).padStart(3, "0")}`;

/** The next report of `child` that `match` accepts. */
function next<R, T extends R>(child: ChildProcess, match: (r: R) => r is T): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (r: R) => {
      if (!match(r)) return;
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolve(r);
    };
    const onExit = (code: number) => reject(new Error(`a bench process exited with ${code}`));
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

async function prepare(url: string, current: Date): Promise<void> {
  const ds = createDataSource({ url, statementTimeoutMs: 600_000, poolSize: 1 });
  await ds.initialize();
  await migrate(ds);
  await ds.destroy();
  const symbols = Array.from({ length: flags.symbols }, (_, i) => symbolName(i));
  const c = new Client({ connectionString: url });
  await c.connect();
  await c.query("TRUNCATE window_aggregates, instruments CASCADE");
  await c.query(
    `INSERT INTO instruments (symbol, name, exchange, sector) SELECT s, s || ' Corp', 'NYSE', 'Industrials' FROM unnest($1::text[]) s`,
    [symbols],
  );
  // The bench principal holds REALTIME, as a live screen's account would: events are not held back.
  await c.query(
    `INSERT INTO grants (principal, entitlement, granted_by) VALUES ('bench', 'REALTIME', 'bench-owner')
     ON CONFLICT (principal, entitlement) WHERE revoked_at IS NULL DO NOTHING`,
  );
  await c.end();
  await seedWindows(url, { symbols, ends: [current] });
}

interface Row {
  what: string;
  /** The server measured. */
  pid: number;
  /** The measured seconds, on the machine's monotonic clock (µs): where the server's profile is read. */
  fromUs: number;
  toUs: number;
  subscribers: number;
  client: { received: number; p50: number; p99: number; max: number; errors: number };
  server: Extract<ServerReport, { cpuMs: number }>;
}

type Measured = Extract<ClientReport, { latencies: Float64Array }>;

/** All client processes' latencies as one distribution. */
function merge(reports: Measured[]): Row["client"] {
  const all = new Float64Array(reports.reduce((n, r) => n + r.latencies.length, 0));
  let at = 0;
  for (const r of reports) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  all.sort();
  const q = (p: number) => all[Math.min(all.length - 1, Math.floor(p * all.length))] ?? NaN;
  // Unmatched: events published during the warm-up that arrived after it (not counted).
  const errors = reports.reduce((n, r) => n + r.errors, 0);
  return { received: all.length, p50: q(0.5), p99: q(0.99), max: all[all.length - 1] ?? NaN, errors };
}

/** How many subscribers the server delivers to now. */
async function subscribers(server: ChildProcess): Promise<number> {
  const answer = next(server, (r: ServerReport): r is { subscribers: number } => "subscribers" in r);
  server.send({ ask: "subscribers" } satisfies ServerCommand);
  return (await answer).subscribers;
}

async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
  for (let k = 0; !(await ok()); k++) {
    if (k > 1200) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** BENCH_HEAP: where the server's heap snapshots go. */
const HEAP_DIR = process.env.BENCH_HEAP ?? "";

/**
 * A heap snapshot of `proc` (started with --heapsnapshot-signal=SIGUSR2) in HEAP_DIR, taken after the
 * measured seconds, since writing it stops the server for seconds: its file name once written.
 */
async function heapSnapshot(proc: ChildProcess): Promise<string> {
  const before = new Set(readdirSync(HEAP_DIR));
  proc.kill("SIGUSR2");
  let file = "";
  let size = -1;
  await until("the heap snapshot", async () => {
    file ||= readdirSync(HEAP_DIR).find((f) => f.endsWith(".heapsnapshot") && !before.has(f)) ?? "";
    if (!file) return false;
    const now = statSync(join(HEAP_DIR, file)).size;
    // Written once the file stops growing and the server answers again.
    const done = now === size && now > 0 && (await subscribers(proc)) >= 0;
    size = now;
    return done;
  });
  return join(HEAP_DIR, file);
}

async function main() {
  // A subscriber of a board is sent its current value first, and no window older than that after it:
  // each step publishes windows of its own, stored once its subscribers are in (as the window engine
  // stores a window before it publishes it), all newer than what the step's subscribers were sent first.
  const perStep = (flags.warmup + flags.seconds) * flags.rate;
  const base = Date.parse("2026-01-05T15:00:00Z");
  let stepsPublished = 0;
  const nextEnds = () => {
    const from = base + stepsPublished++ * perStep * 10_000;
    return Array.from({ length: perStep }, (_, k) => new Date(from + k * 10_000));
  };
  const symbols = Array.from({ length: flags.symbols }, (_, i) => symbolName(i));
  const url = await benchDatabase("tickgraph_bench_fanout");
  await prepare(url, new Date(base - 10_000));
  const server = fork(join(__dirname, "servers/fanout.server.js"), {
    // BENCH_PROFILE=dir writes the server's CPU profile there (open it in Chrome's DevTools); BENCH_HEAP=dir
    // a heap snapshot of it at the end of each step, subscribers still connected (see heapSnapshot).
    execArgv: [
      ...(process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []),
      ...(HEAP_DIR ? ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${HEAP_DIR}`] : []),
    ],
    env: {
      ...process.env,
      DATABASE_URL: url,
      JWT_SECRET: SECRET,
      LOG_LEVEL: "warn",
      NODE_ENV: "production",
      MAX_CONNECTIONS_PER_PRINCIPAL: "1000000",
      MAX_SUBSCRIPTIONS_PER_PRINCIPAL: "1000000",
    },
  });
  // Subscribers spread over several processes, so that reading 50,000 events/s is not what is measured.
  const clients = Array.from({ length: Math.max(1, flags.clients) }, () =>
    fork(join(__dirname, "servers/fanout.clients.js"), { serialization: "advanced" }),
  );
  const ask = (cmd: ClientCommand | ((k: number) => ClientCommand)) =>
    clients.forEach((c, k) => c.send(typeof cmd === "function" ? cmd(k) : cmd));
  const all = <T extends ClientReport>(match: (r: ClientReport) => r is T) =>
    Promise.all(clients.map((c) => next(c, match)));
  const rows: Row[] = [];
  try {
    const { port } = await next(server, (r: ServerReport): r is { port: number } => "port" in r);
    const token = await mintToken(SECRET, "bench", [Role.USER], 3600);
    const wsUrl = `ws://127.0.0.1:${port}/graphql`;

    const step = async (
      target: { proc: ChildProcess; wsUrl: string },
      what: string,
      n: number,
      operations: { query: string; variables?: object }[],
      publish: (from: number, count: number) => ServerCommand,
      stored?: () => Promise<void>,
    ) => {
      process.stdout.write(`${what}: ${n.toLocaleString()} subscribers… `);
      const share = (k: number) => Math.floor(n / clients.length) + (k < n % clients.length ? 1 : 0);
      ask((k) => ({
        open: { url: target.wsUrl, token, n: share(k), perConnection: flags.perConnection, operations },
      }));
      const opened = await all((r): r is { opened: number; failed: number } => "opened" in r);
      const failed = opened.reduce((f, o) => f + o.failed, 0);
      if (failed) throw new Error(`${failed} connections of ${n} subscribers could not open`);
      const server = target.proc;
      const tell = (cmd: ServerCommand) => server.send(cmd);
      await until(`${n} subscribers`, async () => (await subscribers(server)) === n);
      await stored?.();
      const published: Record<string, number> = {};
      const onPublished = (r: ServerReport) => "published" in r && (published[r.published] = r.at);
      const warm = flags.warmup * flags.rate;
      tell(publish(0, warm));
      await next(server, (r: ServerReport): r is { done: true } => "done" in r);
      ask({ measure: "start" });
      tell({ measure: "start" });
      server.on("message", onPublished);
      const fromUs = monotonicUs();
      tell(publish(warm, flags.seconds * flags.rate));
      await next(server, (r: ServerReport): r is { done: true } => "done" in r);
      await new Promise((r) => setTimeout(r, 1000)); // the last event's deliveries
      const toUs = monotonicUs();
      server.off("message", onPublished);
      tell({ measure: "stop" });
      const srv = await next(server, (r: ServerReport): r is Row["server"] => "cpuMs" in r);
      if (HEAP_DIR) process.stdout.write(`heap snapshot ${await heapSnapshot(server)}… `);
      ask({ measure: "stop", published });
      const cli = merge(await all((r): r is Measured => "latencies" in r));
      ask({ close: true });
      await all((r): r is { closed: true } => "closed" in r);
      await until("subscribers gone", async () => (await subscribers(server)) === 0);
      rows.push({ what, pid: server.pid!, fromUs, toUs, subscribers: n, client: cli, server: srv });
      process.stdout.write(`p99 ${cli.p99.toFixed(1)} ms\n`);
    };

    const tg = { proc: server, wsUrl };
    /** A step's windows: published `from`… of them, stored by `stored` (the first to be called). */
    const windowStep = () => {
      const ends = nextEnds();
      return {
        publish: (from: number, count: number): ServerCommand => ({
          publish: "windows",
          ends: ends.slice(from, from + count).map((e) => e.toISOString()),
          rate: flags.rate,
        }),
        stored: () => seedWindows(url, { symbols, ends }),
      };
    };
    for (const n of SUBSCRIBERS) {
      const w = windowStep();
      await step(tg, "topSymbols", n, [{ query: TOP }], w.publish, w.stored);
    }
    if (flags.ticks) {
      await step(
        tg,
        `quoteTicks (${flags.symbols} symbols)`,
        flags.ticks,
        symbols.map((s) => ({ query: TICK, variables: { s: [s] } })),
        (_from, count) => ({ publish: "ticks", symbols, rate: flags.rate, count }),
      );
    }
    if (flags.floor) {
      // The same subscribers and events against a bare ws server writing ready-made messages.
      const floor = fork(join(__dirname, "servers/ws-floor.server.js"));
      try {
        const at = await next(floor, (r: ServerReport): r is { port: number } => "port" in r);
        const n = Math.max(...SUBSCRIBERS);
        const bare = { proc: floor, wsUrl: `ws://127.0.0.1:${at.port}/graphql` };
        await step(bare, "bare ws server (floor)", n, [{ query: TOP }], windowStep().publish);
      } finally {
        floor.kill();
      }
    }
  } finally {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGTERM");
    clients.forEach((c) => c.kill());
    await exited; // its CPU profile is written on exit
  }

  const cells = (r: Row) => {
    return [
      r.what,
      r.subscribers.toLocaleString(),
      Math.round(r.client.received / flags.seconds).toLocaleString(),
      r.client.p50.toFixed(1),
      r.client.p99.toFixed(1),
      r.client.max.toFixed(1),
      `${((r.server.cpuMs / r.server.wallMs) * 100).toFixed(0)} %`,
      r.server.rssPeakMb.toFixed(0),
      String(r.client.errors),
    ];
  };
  process.stdout.write(
    [
      ``,
      `${flags.rate} events/s, ${flags.seconds} s measured after ${flags.warmup} s; ${flags.perConnection} subscription(s) per connection, subscribers in ${clients.length} processes`,
      `| subscription | subscribers | deliveries/s | p50 ms | p99 ms | max ms | server CPU | server RSS MB | errors |`,
      `|---|---:|---:|---:|---:|---:|---:|---:|---:|`,
      ...rows.map((r) => `| ${cells(r).join(" | ")} |`),
      ``,
    ].join("\n"),
  );
  if (process.env.BENCH_PROFILE)
    printProfile(
      process.env.BENCH_PROFILE,
      server.pid!,
      rows.filter((r) => r.pid === server.pid),
    );
}

/** BENCH_PROFILE: where each tickgraph step's measured seconds went in the server, by function. */
function printProfile(dir: string, pid: number, rows: Row[]): void {
  const file = readdirSync(dir).find((f) => f.includes(`.${pid}.`) && f.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no CPU profile of process ${pid} in ${dir}`);
  for (const r of rows) {
    const { busyUs, functions, owners } = summariseProfile(join(dir, file), r.fromUs, r.toUs);
    const pct = (us: number) => ((100 * us) / busyUs).toFixed(1).padStart(5);
    process.stdout.write(
      [
        ``,
        `${r.what}, ${r.subscribers.toLocaleString()} subscribers: the server's measured seconds by self time (profile ${join(dir, file)})`,
        `| self % | function | owner |`,
        `| -----: | -------- | ----- |`,
        ...functions.slice(0, 20).map((f) => `| ${pct(f.us)} | ${f.name} | ${f.owner} |`),
        ``,
        `| self % | owner |`,
        `| -----: | ----- |`,
        ...owners.slice(0, 12).map((o) => `| ${pct(o.us)} | ${o.owner} |`),
        ``,
      ].join("\n"),
    );
  }
}

main()
  .then(() => process.exit(0))
  .catch((err) => {
    process.stderr.write(`bench:fanout failed: ${(err as Error).stack}\n`);
    process.exit(1);
  });
