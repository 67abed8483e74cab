import "reflect-metadata";
import { join } from "node:path";
import { Client } from "pg";
import { createDataSource, migrate } from "../src/db/data-source";
import { Role } from "../src/policy/principal";
import { mintToken } from "../src/policy/tokens";
import { benchDatabase, load, numericFlags, startChild, type LoadResult } from "./support";

// bench:query — quotes(symbols:[X], first:100) over GraphQL against a plain node:http + pg server running
// the same SQL, side by side in one run, on `rows` quotes over `symbols` symbols in the machine's Postgres.
const flags = numericFlags({ rows: 1_000_000, symbols: 100, connections: 50, seconds: 20, warmup: 5 });
const SECRET = "bench-secret-bench-secret-bench-secret!!";
const QUERY = `query($s: [String!]) { quotes(symbols: $s, first: 100) { nodes { symbol eventTime price size } } }`;

const symbolName = (i: number) => `S${String(i).padStart(3, "0")}`;

async function ensureData(url: string): Promise<void> {
  const ds = createDataSource({ url, statementTimeoutMs: 600_000, poolSize: 1 });
  await ds.initialize();
  await migrate(ds);
  await ds.destroy();
  const c = new Client({ connectionString: url });
  await c.connect();
  const { rows } = await c.query<{ n: string }>("SELECT count(*) AS n FROM quotes");
  if (Number(rows[0].n) !== flags.rows) {
    process.stdout.write(`loading ${flags.rows.toLocaleString()} quotes over ${flags.symbols} symbols…\n`);
    const symbols = Array.from({ length: flags.symbols }, (_, i) => symbolName(i));
    const perSymbol = Math.ceil(flags.rows / flags.symbols);
    await c.query("TRUNCATE quotes, instruments RESTART IDENTITY");
    await c.query(
      `INSERT INTO instruments (symbol, name, exchange, sector) SELECT s, s || ' Corp', 'NYSE', 'Industrials' FROM unnest($1::text[]) s`,
      [symbols],
    );
    await c.query(
      `INSERT INTO quotes (symbol, event_time, seq, price, size, bid, bid_size, ask, ask_size, exchange)
       SELECT s, timestamptz '2026-01-05 14:30:00Z' + n * interval '100 milliseconds', n,
              100 + (n % 997) / 10.0, 1 + n % 500, 99.9, 3, 100.1, 4, 'V'
       FROM unnest($1::text[]) s CROSS JOIN generate_series(1, $2::int) n LIMIT $3`,
      [symbols, perSymbol, flags.rows],
    );
    await c.query("VACUUM ANALYZE quotes");
  }
  // The bench principal holds REALTIME, as a BI tool's service account would: served live, not delayed.
  await c.query(
    `INSERT INTO grants (principal, entitlement, granted_by) VALUES ('bench', 'REALTIME', 'bench-owner')
     ON CONFLICT (principal, entitlement) WHERE revoked_at IS NULL DO NOTHING`,
  );
  await c.end();
}

function row(name: string, r: LoadResult): string {
  return `| ${name.padEnd(28)} | ${r.requestsPerSec.toFixed(0).padStart(7)} | ${r.p50.toFixed(1).padStart(7)} | ${r.p99.toFixed(1).padStart(7)} | ${String(r.non2xx + r.errors).padStart(6)} |`;
}

async function main() {
  const url = await benchDatabase("tickgraph_bench");
  await ensureData(url);
  const env = { DATABASE_URL: url, JWT_SECRET: SECRET, LOG_LEVEL: "warn", NODE_ENV: "production" };
  const bodies = Array.from({ length: flags.symbols }, (_, i) =>
    JSON.stringify({ query: QUERY, variables: { s: [symbolName(i)] } }),
  );
  const token = await mintToken(SECRET, "bench", [Role.USER], 3600);
  const opts = {
    bodies,
    connections: flags.connections,
    seconds: flags.seconds,
    warmupSeconds: flags.warmup,
  };

  const results: [string, LoadResult][] = [];
  const auth = { authorization: `Bearer ${token}` };
  for (const [name, script, headers, extraEnv] of [
    ["plain node:http + pg", "servers/plain.server.js", {}, {}],
    ["tickgraph GraphQL", "servers/graphql.server.js", auth, {}],
    ["tickgraph, policy off", "servers/graphql.server.js", auth, { BENCH_POLICY: "off" }],
  ] as const) {
    const child = await startChild(join(__dirname, script), { ...env, ...extraEnv });
    try {
      const sample = await fetch(`http://127.0.0.1:${child.port}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: bodies[7],
      }).then((r) => r.json() as Promise<{ data?: { quotes: { nodes: unknown[] } } }>);
      if (sample.data?.quotes.nodes.length !== 100)
        throw new Error(`${name} answered ${JSON.stringify(sample).slice(0, 300)}`);
      results.push([name, await load({ ...opts, url: `http://127.0.0.1:${child.port}/graphql`, headers })]);
    } finally {
      await child.stop();
    }
  }
  const [plain, gql, bare] = results.map(([, r]) => r);
  process.stdout.write(
    [
      ``,
      `quotes(symbols:["X"], first:100) — ${flags.rows.toLocaleString()} rows, ${flags.symbols} symbols, ` +
        `${flags.connections} connections, ${flags.seconds} s after ${flags.warmup} s warm-up`,
      `| server                       |   req/s | p50 ms  | p99 ms  | errors |`,
      `|------------------------------|---------|---------|---------|--------|`,
      ...results.map(([n, r]) => row(n, r)),
      ``,
      `tickgraph / plain: ${((gql.requestsPerSec / plain.requestsPerSec) * 100).toFixed(0)}% (target ≥ 50%)`,
      `policy and audit cost: ${((1 - gql.requestsPerSec / bare.requestsPerSec) * 100).toFixed(1)}% of throughput (target < 15%)`,
      ``,
    ].join("\n"),
  );
}

main().catch((err) => {
  process.stderr.write(`bench:query failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
