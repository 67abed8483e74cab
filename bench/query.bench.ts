import "reflect-metadata";
import { readdirSync } from "node:fs";
import { loadavg } from "node:os";
import { basename, join, resolve } from "node:path";
import { Client } from "pg";
import { quotePageSql } from "../src/db/market.repo";
import { Role } from "../src/policy/principal";
import { mintToken } from "../src/policy/tokens";
import { WindowSize } from "../src/windows/windows";
import { windowPageSql } from "../src/db/windows.repo";
import { summariseProfile } from "./profile";
import { BENCH_PRINCIPAL, ensureQueryData, symbolName } from "./query.data";
import {
  benchDatabase,
  benchFlags,
  load,
  monotonicUs,
  procCpuMs,
  startChild,
  threadCpuMs,
  type Child,
  type LoadResult,
} from "./support";

// bench:query — the same pages of market data served by a plain node:http + pg server, tickgraph (with
// and without its policy layer) and PostGraphile v5, all on one database and all running at once; rounds
// alternate between the servers so that background load on the machine falls on each alike.
const flags = benchFlags({
  rows: 1_000_000,
  symbols: 100,
  connections: 50,
  seconds: 10,
  warmup: 3,
  rounds: 3,
  scenarios: "quotes,windows,quotes1000",
  // A directory: instead of the comparison, profile tickgraph (policy on) alone under the first scenario.
  profile: "",
  // Other checkouts, built (`npm run build` there), comma-separated: each one's tickgraph runs as one
  // more row, to compare versions of the server in the same rounds.
  against: "",
});
const SECRET = "bench-secret-bench-secret-bench-secret!!";

type Dialect = "tickgraph" | "postgraphile";

interface Scenario {
  title: string;
  /** Operation name: the plain server answers by it. */
  operation: "Quotes" | "Windows";
  pageSize: number;
  /** tickgraph's document; the plain server reads only the operation name and variables. */
  tickgraph: string;
  /** PostGraphile's equivalent, as its Amber preset names things. */
  postgraphile: string;
  /** The index each server's statement must be planned on. */
  index: string;
  /** tickgraph's statement for one symbol (the plain server runs the same). */
  sql(symbol: string): { sql: string; params: unknown[] };
  /** Values of PostGraphile's placeholders for one symbol, in its statement's order. */
  postgraphileValues(symbol: string): unknown[];
}

const quotesPage = (n: number): Scenario => ({
  title: `quotes(symbols: [X], first: ${n}) { nodes { symbol eventTime price size } }`,
  operation: "Quotes",
  pageSize: n,
  tickgraph: `query Quotes($s: [String!], $n: Int) {
    quotes(symbols: $s, first: $n) { nodes { symbol eventTime price size } } }`,
  postgraphile: `query Quotes($s: String!, $n: Int) {
    allQuotes(condition: { symbol: $s }, orderBy: [EVENT_TIME_DESC, ROW_ID_DESC], first: $n) {
      nodes { symbol eventTime price size } } }`,
  index: "quotes_symbol_time_idx",
  sql: (symbol) => quotePageSql({ symbols: [symbol], order: "DESC", limit: n + 1 }),
  postgraphileValues: (symbol) => [symbol],
});

const SCENARIOS: Record<string, Scenario> = {
  quotes: quotesPage(100),
  windows: {
    title:
      "windowAggregates(size: ONE_MINUTE, symbols: [X], first: 100) { nodes { symbol windowEnd open close volume } }",
    operation: "Windows",
    pageSize: 100,
    tickgraph: `query Windows($s: [String!], $n: Int) {
      windowAggregates(size: ONE_MINUTE, symbols: $s, first: $n) { nodes { symbol windowEnd open close volume } } }`,
    postgraphile: `query Windows($s: String!, $n: Int) {
      allWindowAggregates(condition: { size: ONE_MINUTE, symbol: $s }, orderBy: [WINDOW_END_DESC, SYMBOL_DESC], first: $n) {
        nodes { symbol windowEnd open close volume } } }`,
    index: "window_aggregates_symbol_idx",
    sql: (symbol) =>
      windowPageSql({ size: WindowSize.ONE_MINUTE, symbols: [symbol], order: "DESC", limit: 101 }),
    postgraphileValues: (symbol) => [WindowSize.ONE_MINUTE, symbol],
  },
  quotes1000: quotesPage(1000),
};

interface ServerSpec {
  name: string;
  /** Its connections' application_name, by which its Postgres backends are told apart. */
  app: string;
  script: string;
  dialect: Dialect;
  env?: Record<string, string>;
  /** tickgraph with its policy layer on: every request must reach the access log. */
  audited?: boolean;
  auth?: boolean;
}

const SERVERS: ServerSpec[] = [
  {
    name: "plain node:http + pg",
    app: "bench-plain",
    script: "servers/plain.server.js",
    dialect: "tickgraph",
  },
  {
    name: "tickgraph (policy, access log)",
    app: "bench-tickgraph",
    script: "servers/graphql.server.js",
    dialect: "tickgraph",
    auth: true,
    audited: true,
  },
  {
    name: "tickgraph, policy off",
    app: "bench-tickgraph-policy-off",
    script: "servers/graphql.server.js",
    dialect: "tickgraph",
    auth: true,
    env: { BENCH_POLICY: "off" },
  },
  {
    name: "PostGraphile 5.1.5",
    app: "bench-postgraphile",
    script: "servers/postgraphile.server.js",
    dialect: "postgraphile",
  },
];
const [PLAIN, TICKGRAPH, , POSTGRAPHILE] = SERVERS;
for (const [i, dir] of (flags.against ? flags.against.split(",") : []).entries()) {
  SERVERS.splice(2 + i, 0, {
    name: `tickgraph at ${basename(resolve(dir))} (policy, access log)`,
    app: `bench-tickgraph-against-${i}`,
    script: resolve(dir, "dist/bench/servers/graphql.server.js"),
    dialect: "tickgraph",
    auth: true,
  });
}

interface Running extends ServerSpec {
  child: Child;
  url: string;
  headers: Record<string, string>;
}

interface Round extends LoadResult {
  /** The server process's CPU time over the round. */
  cpuMs: number;
  /** CPU time of the Postgres backends serving the server's connections over the round. */
  postgresMs: number;
  /** This process's (the load generator's) CPU time over the round. */
  clientMs: number;
}

const print = (line = "") => process.stdout.write(line + "\n");
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function body(scenario: Scenario, dialect: Dialect, symbol: string): string {
  const tickgraph = dialect === "tickgraph";
  return JSON.stringify({
    operationName: scenario.operation,
    query: tickgraph ? scenario.tickgraph : scenario.postgraphile,
    variables: { s: tickgraph ? [symbol] : symbol, n: scenario.pageSize },
  });
}

async function post(
  server: { name: string; url: string; headers: Record<string, string> },
  payload: string,
): Promise<{ data?: Record<string, { nodes: unknown[] }>; errors?: unknown; extensions?: unknown }> {
  const res = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json", ...server.headers },
    body: payload,
  });
  const json = (await res.json()) as { data?: Record<string, { nodes: unknown[] }>; errors?: unknown };
  if (res.status !== 200 || json.errors || !json.data)
    throw new Error(`${server.name} answered ${res.status} ${JSON.stringify(json).slice(0, 400)}`);
  return json;
}

/** A page's content, whatever each server names and formats: timestamps as epoch ms, in field order. */
function contentOf(json: { data?: Record<string, { nodes: unknown[] }> }): unknown[][] {
  const nodes = Object.values(json.data!)[0].nodes as Record<string, unknown>[];
  return nodes.map((n) =>
    Object.values(n).map((v) => (typeof v === "string" && /^\d{4}-\d\d-\d\dT/.test(v) ? Date.parse(v) : v)),
  );
}

/** Every server returns the same rows with the same values, so that no server does less work. */
async function checkSameContent(scenario: Scenario, servers: Running[]): Promise<number> {
  let rows = 0;
  for (const symbol of [symbolName(0), symbolName(flags.symbols - 1)]) {
    const expected = JSON.stringify(
      contentOf(await post(servers[0], body(scenario, servers[0].dialect, symbol))),
    );
    for (const s of servers.slice(1)) {
      const got = contentOf(await post(s, body(scenario, s.dialect, symbol)));
      if (JSON.stringify(got) !== expected)
        throw new Error(
          `${s.name} serves another page than ${servers[0].name} for ${symbol}: ` +
            `${JSON.stringify(got).slice(0, 300)} vs ${expected.slice(0, 300)}`,
        );
      rows = got.length;
    }
  }
  if (rows === 0) throw new Error(`${scenario.title}: empty pages; is the data loaded?`);
  return rows;
}

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  Plans?: PlanNode[];
}

/**
 * Prints how Postgres plans `sql`, with a warning unless it walks `index` in its order: no sort (incremental
 * ones included) and no sequential scan of its table. At the default size every statement is; with a few
 * rows per symbol a bitmap scan and a sort may be cheaper, so this does not stop the bench.
 */
async function showPlan(db: Client, what: string, index: string, sql: string, params: unknown[]) {
  const { rows } = await db.query<{ "QUERY PLAN": [{ Plan: PlanNode }] }>(
    `EXPLAIN (FORMAT JSON) ${sql}`,
    params,
  );
  const nodes: PlanNode[] = [];
  const walk = (n: PlanNode) => (nodes.push(n), n.Plans?.forEach(walk));
  walk(rows[0]["QUERY PLAN"][0].Plan);
  const walked = nodes.find((n) => n["Index Name"] === index);
  const table = walked?.["Relation Name"];
  const inOrder =
    walked &&
    !nodes.some(
      (n) =>
        n["Node Type"].endsWith("Sort") || (n["Node Type"] === "Seq Scan" && n["Relation Name"] === table),
    );
  const shape = nodes
    .map(
      (n) =>
        `${n["Node Type"]}${n["Index Name"] ? ` ${n["Index Name"]}` : n["Relation Name"] ? ` ${n["Relation Name"]}` : ""}`,
    )
    .join(" > ");
  print(`${inOrder ? "plan" : `WARNING: not an in-order walk of ${index}:`} ${what}: ${shape}`);
}

/**
 * The plans of both statements of each scenario: tickgraph's (which the plain server shares) and
 * PostGraphile's, as a PostGraphile started with its SQL explained reports it.
 */
async function showPlans(url: string, env: Record<string, string>, scenarios: Scenario[]) {
  const db = new Client({ connectionString: url });
  await db.connect();
  const explaining = await startChild(resolve(__dirname, POSTGRAPHILE.script), {
    ...env,
    BENCH_EXPLAIN: "on",
  });
  try {
    const symbol = symbolName(0);
    for (const s of scenarios) {
      const { sql, params } = s.sql(symbol);
      await showPlan(db, `tickgraph's ${s.operation} statement`, s.index, sql, params);
      const res = await post(
        { name: POSTGRAPHILE.name, url: `http://127.0.0.1:${explaining.port}/graphql`, headers: {} },
        body(s, "postgraphile", symbol),
      );
      const ops = (res.extensions as { explain?: { operations: { type: string; query: string }[] } }).explain
        ?.operations;
      const statements = (ops ?? []).filter((o) => o.type === "sql");
      if (statements.length !== 1)
        throw new Error(`PostGraphile ran ${statements.length} statements for ${s.title}, not one`);
      await showPlan(
        db,
        `PostGraphile's ${s.operation} statement`,
        s.index,
        statements[0].query.replace(/;\s*$/, ""),
        s.postgraphileValues(symbol),
      );
    }
  } finally {
    await explaining.stop();
    await db.end();
  }
}

/** tickgraph serves the bench principal live (REALTIME held), not delayed. */
async function checkRealtime(server: Running) {
  const res = await post(
    server,
    JSON.stringify({
      query: `{ quotes(symbols: ["${symbolName(0)}"], first: 1) { nodes { delayed } }
        windowAggregates(size: ONE_MINUTE, symbols: ["${symbolName(0)}"], first: 1) { nodes { delayed } } }`,
    }),
  );
  const delayed = Object.values(res.data!).flatMap((c) =>
    (c.nodes as { delayed: boolean }[]).map((n) => n.delayed),
  );
  if (delayed.length !== 2 || delayed.some((d) => d))
    throw new Error(`${server.name} serves delayed data: ${JSON.stringify(res)}`);
}

async function accessLogSeq(db: Client): Promise<number> {
  const { rows } = await db.query<{ seq: string | null }>("SELECT max(seq) AS seq FROM access_log");
  return Number(rows[0].seq ?? 0);
}

/** One body per symbol, driven round-robin. */
const bodiesOf = (scenario: Scenario, dialect: Dialect) =>
  Array.from({ length: flags.symbols }, (_, i) => body(scenario, dialect, symbolName(i)));

/** CPU ms so far of each Postgres backend connected as `app` (NaN where /proc cannot show them). */
async function backendsCpuMs(db: Client, app: string): Promise<Map<number, number>> {
  const { rows } = await db.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
    [app],
  );
  return new Map(rows.map((r) => [r.pid, threadCpuMs(r.pid)]));
}

/** CPU the backends of `app` spent since `before` (backends born since then count from zero). */
async function backendsCpuSince(db: Client, app: string, before: Map<number, number>): Promise<number> {
  let ms = 0;
  for (const [pid, now] of await backendsCpuMs(db, app)) ms += now - (before.get(pid) ?? 0);
  return ms;
}

async function measure(db: Client, scenario: Scenario, servers: Running[]): Promise<Map<Running, Round[]>> {
  const bodies = new Map(servers.map((s) => [s, bodiesOf(scenario, s.dialect)]));
  const run = (s: Running, seconds: number) =>
    load({ url: s.url, bodies: bodies.get(s)!, headers: s.headers, connections: flags.connections, seconds });
  const rounds = new Map<Running, Round[]>(servers.map((s) => [s, []]));
  for (let r = 0; r < flags.rounds; r++) {
    // Each round starts with the next server, so that each takes every place in a round in turn.
    const order = servers.map((_, i) => servers[(i + r) % servers.length]);
    for (const s of order) {
      // Warm-up right before a server's first round: at most two servers' pools (the one measured and the
      // one before, whose idle connections close after 10 s) hold Postgres connections at a time.
      if (r === 0 && flags.warmup > 0) counted(s, await run(s, flags.warmup));
      const backends = await backendsCpuMs(db, s.app);
      const before = procCpuMs(s.child.proc.pid!);
      const client = process.cpuUsage();
      const result = await run(s, flags.seconds);
      const { user, system } = process.cpuUsage(client);
      const cpuMs = procCpuMs(s.child.proc.pid!) - before;
      rounds.get(s)!.push({
        ...result,
        cpuMs,
        postgresMs: await backendsCpuSince(db, s.app, backends),
        clientMs: (user + system) / 1000,
      });
      counted(s, result);
    }
  }
  return rounds;
}

/** Requests each server has answered, to check the access log against. */
const answered = new Map<Running, number>();
const counted = (s: Running, r: LoadResult) => answered.set(s, (answered.get(s) ?? 0) + r.total);

interface Summary {
  rps: number;
  p50: number;
  p99: number;
  failed: number;
  cpuUs: number;
  postgresUs: number;
  clientUs: number;
  each: number[];
}

function summarise(rounds: Round[]): Summary {
  const total = rounds.reduce((a, r) => a + r.total, 0);
  return {
    rps: median(rounds.map((r) => r.requestsPerSec)),
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    failed: rounds.reduce((a, r) => a + r.errors + r.non2xx + r.graphqlErrors, 0),
    cpuUs: total ? (rounds.reduce((a, r) => a + r.cpuMs, 0) * 1000) / total : NaN,
    postgresUs: total ? (rounds.reduce((a, r) => a + r.postgresMs, 0) * 1000) / total : NaN,
    clientUs: total ? (rounds.reduce((a, r) => a + r.clientMs, 0) * 1000) / total : NaN,
    each: rounds.map((r) => r.requestsPerSec),
  };
}

/** `a / b` as "1.23x", or "n/a" where there is nothing to divide by. */
const times = (a: number, b: number) => (b > 0 && Number.isFinite(a) ? `${(a / b).toFixed(2)}x` : "n/a");

const num = (v: number, digits = 0) =>
  v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** A Markdown table, columns padded; all but the first and third right-aligned. */
function table(head: string[], rows: string[][]) {
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const left = (i: number) => i === 0 || i === 2;
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (left(i) ? c.padEnd(width[i]) : c.padStart(width[i]))).join(" | ")} |`;
  print(line(head));
  print(`| ${width.map((w, i) => (left(i) ? "-".repeat(w) : "-".repeat(w - 1) + ":")).join(" | ")} |`);
  rows.forEach((r) => print(line(r)));
}

function report(key: string, scenario: Scenario, rowsPerPage: number, results: Map<Running, Round[]>) {
  const sums = new Map([...results].map(([s, r]) => [s.name, summarise(r)]));
  print();
  print(`${key}: ${scenario.title} — ${rowsPerPage} rows a page`);
  const cells = (s: Summary) => [
    num(s.rps),
    s.each.map((x) => num(x)).join(", "),
    num(s.p50, 1),
    num(s.p99, 1),
    String(s.failed),
    num(s.cpuUs),
    num(s.postgresUs),
  ];
  table(
    ["server", "req/s (median)", "each round", "p50 ms", "p99 ms", "errors", "CPU µs/req", "Postgres µs/req"],
    [...sums].map(([name, s]) => [name, ...cells(s)]),
  );
  print(
    `load generator (this process) CPU µs/req: ${[...sums].map(([n, s]) => `${n} ${num(s.clientUs)}`).join(", ")}`,
  );
  const tg = sums.get(TICKGRAPH.name)!;
  const peer = sums.get(POSTGRAPHILE.name)!;
  const plain = sums.get(PLAIN.name)!;
  print(
    `tickgraph / PostGraphile: ${times(tg.rps, peer.rps)} req/s (target ≥ 1.5x, first milestone ≥ 1.0x), ` +
      `p99 ${num(tg.p99, 1)} vs ${num(peer.p99, 1)} ms, CPU/req ${times(tg.cpuUs, peer.cpuUs)} ` +
      `(Postgres ${times(tg.postgresUs, peer.postgresUs)})`,
  );
  print(
    `tickgraph / plain: ${times(tg.rps, plain.rps)} req/s, p99 ${num(tg.p99, 1)} vs ${num(plain.p99, 1)} ms, ` +
      `CPU/req ${times(tg.cpuUs, plain.cpuUs)} (Postgres ${times(tg.postgresUs, plain.postgresUs)})`,
  );
}

/** `url` with an application_name, which pg takes over the one its client code sets. */
function withApplicationName(url: string, app: string): string {
  const u = new URL(url);
  u.searchParams.set("application_name", app);
  return u.toString();
}

/**
 * tickgraph (policy on) alone under `scenario`, started with `node --cpu-prof`: its self time by function
 * and by owner over the measured seconds (start-up, warm-up and idle time left out).
 */
async function profile(
  dir: string,
  key: string,
  scenario: Scenario,
  env: Record<string, string>,
  token: string,
) {
  const child = await startChild(resolve(__dirname, TICKGRAPH.script), env, [
    "--cpu-prof",
    `--cpu-prof-dir=${dir}`,
  ]);
  const server: Running = {
    ...TICKGRAPH,
    child,
    url: `http://127.0.0.1:${child.port}/graphql`,
    headers: { authorization: `Bearer ${token}` },
  };
  const opts = { url: server.url, bodies: bodiesOf(scenario, "tickgraph"), headers: server.headers };
  let from: number, to: number, cpuMs: number, result: LoadResult;
  try {
    await checkRealtime(server);
    if (flags.warmup > 0) await load({ ...opts, connections: flags.connections, seconds: flags.warmup });
    from = monotonicUs();
    const before = procCpuMs(child.proc.pid!);
    result = await load({ ...opts, connections: flags.connections, seconds: flags.seconds });
    cpuMs = procCpuMs(child.proc.pid!) - before;
    to = monotonicUs();
  } finally {
    await child.stop();
  }
  const file = readdirSync(dir).find((f) => f.includes(`.${child.proc.pid}.`) && f.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no CPU profile of process ${child.proc.pid} in ${dir}`);
  const { busyUs, functions, owners } = summariseProfile(join(dir, file), from, to);
  // Samples are taken on the wall clock, so a process the machine preempts looks busier than it is: the
  // profile gives each function's share, the process's CPU time (from /proc) the µs those shares are of.
  const cpuUsPerReq = (cpuMs * 1000) / result.total;
  const pct = (us: number) => ((100 * us) / busyUs).toFixed(1).padStart(5);
  const perReq = (us: number) => num((us / busyUs) * cpuUsPerReq).padStart(6);
  print(
    `\n${key}: ${scenario.title}; tickgraph (policy, access log) alone, ${flags.seconds} s at ` +
      `${num(result.requestsPerSec)} req/s (p99 ${num(result.p99, 1)} ms); ${num(cpuUsPerReq)} CPU µs per request; ` +
      `profile ${join(dir, file)}`,
  );
  print(`| self % | µs/req | function | owner |`);
  print(`| -----: | -----: | -------- | ----- |`);
  for (const f of functions.slice(0, 25))
    print(`| ${pct(f.us)} | ${perReq(f.us)} | ${f.name} | ${f.owner} |`);
  print(`\n| self % | µs/req | owner |`);
  print(`| -----: | -----: | ----- |`);
  for (const o of owners.slice(0, 20)) print(`| ${pct(o.us)} | ${perReq(o.us)} | ${o.owner} |`);
}

async function main() {
  const keys = flags.scenarios.split(",").map((k) => k.trim());
  for (const k of keys)
    if (!SCENARIOS[k]) throw new Error(`unknown scenario ${k}; known: ${Object.keys(SCENARIOS).join(",")}`);
  const scenarios = keys.map((k) => SCENARIOS[k]);
  const url = await benchDatabase("tickgraph_bench");
  await ensureQueryData(url, flags.rows, flags.symbols, print);
  const env = { DATABASE_URL: url, JWT_SECRET: SECRET, LOG_LEVEL: "warn", NODE_ENV: "production" };
  const token = await mintToken(SECRET, BENCH_PRINCIPAL, [Role.USER], 24 * 3600);
  if (flags.profile) return profile(flags.profile, keys[0], scenarios[0], env, token);
  await showPlans(url, env, scenarios);

  const servers: Running[] = [];
  const db = new Client({ connectionString: url });
  await db.connect();
  try {
    for (const spec of SERVERS) {
      const child = await startChild(resolve(__dirname, spec.script), {
        ...env,
        DATABASE_URL: withApplicationName(url, spec.app),
        ...spec.env,
      });
      servers.push({
        ...spec,
        child,
        url: `http://127.0.0.1:${child.port}/graphql`,
        headers: spec.auth ? { authorization: `Bearer ${token}` } : {},
      });
    }
    const audited = servers.find((s) => s.audited)!;
    await checkRealtime(audited);
    const logBefore = await accessLogSeq(db);

    const started = new Date();
    print(
      `\n${flags.rows.toLocaleString()} quotes over ${flags.symbols} symbols; ${flags.connections} connections; ` +
        `${flags.rounds} rounds of ${flags.seconds} s per server after ${flags.warmup} s of warm-up each; ` +
        `load average ${loadavg()
          .map((l) => l.toFixed(1))
          .join(" ")}; ${started.toISOString()}`,
    );
    for (const [i, scenario] of scenarios.entries()) {
      const rows = await checkSameContent(scenario, servers);
      report(keys[i], scenario, rows, await measure(db, scenario, servers));
    }
    print(
      `\nload average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}; ` + `${((Date.now() - started.getTime()) / 1000).toFixed(0)} s`,
    );

    // Every request tickgraph answered with its policy layer on reached the access log.
    const expected = answered.get(audited)!;
    const deadline = Date.now() + 30_000;
    let logged = (await accessLogSeq(db)) - logBefore;
    while (logged < expected && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      logged = (await accessLogSeq(db)) - logBefore;
    }
    if (logged < expected)
      throw new Error(`access log holds ${logged} entries for ${expected} requests answered`);
    print(
      `access log: ${logged.toLocaleString()} entries for ${expected.toLocaleString()} requests answered by tickgraph`,
    );
  } finally {
    await Promise.all(servers.map((s) => s.child.stop()));
    await db.end();
  }
}

main().catch((err) => {
  process.stderr.write(`bench:query failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
