import "reflect-metadata";
import { Client } from "pg";
import { createDataSource, migrate } from "../src/db/data-source";
import { WindowEngine, type WindowsEvent } from "../src/windows/window.engine";
import { mergePanesSql } from "../src/db/panes.repo";
import { benchDatabase, numericFlags, procCpuMs } from "./support";

// bench:windows — the window engine alone: panes for `symbols` symbols hold `rate` trades per market
// second; the watermark advances one pane (10 s) at a time and we time each step from the watermark
// passing a window end to its rows being committed and the event published.
const flags = numericFlags({ symbols: 500, rate: 100_000, minutes: 30, steps: 200 });

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function main() {
  const url = await benchDatabase("tickgraph_bench_windows");
  const ds = createDataSource({ url, statementTimeoutMs: 600_000, poolSize: 4 });
  await ds.initialize();
  await migrate(ds);
  const c = new Client({ connectionString: url });
  await c.connect();
  await c.query("TRUNCATE quotes, panes_10s, window_aggregates, window_progress");
  const t0 = Date.parse("2026-01-05T14:30:00Z");
  const perPane = Math.max(1, Math.round((flags.rate * 10) / flags.symbols));
  process.stdout.write(
    `preparing ${flags.minutes} min of panes for ${flags.symbols} symbols (${perPane} trades per pane)…\n`,
  );
  // Panes as ingest would have merged them: ${perPane} trades per symbol per 10 s (built from a sample).
  await c.query(
    `${mergePanesSql(`(SELECT 'S' || s AS symbol, $1::timestamptz + (p * 10 + k * 10.0 / $4) * interval '1 second' AS event_time,
                          p * $4 + k AS seq, 100 + s + sin(p + k) AS price, 1 + k % 100 AS size
                   FROM generate_series(1, $2::int) s, generate_series(0, $3::int - 1) p, generate_series(0, least($4::int, 20) - 1) k)`)}`,
    [new Date(t0), flags.symbols, flags.minutes * 6, perPane],
  );
  await c.query("ANALYZE panes_10s");

  const latencies: number[] = [];
  let waiting: { at: number; resolve: () => void } | null = null;
  const engine = new WindowEngine(ds, {
    onWindows: (_e: WindowsEvent) => {
      if (waiting) {
        latencies.push(performance.now() - waiting.at);
        waiting.resolve();
        waiting = null;
      }
    },
  });
  await engine.start();
  // Warm up: the first 15 minutes open the first windows of every size.
  engine.onCommit({ watermark: new Date(t0 + 15 * 60_000), buckets: [], inserted: 0 });
  await engine.idle();
  const cpu0 = process.cpuUsage();
  const pgCpu0 = await backendCpu(c);
  const wall0 = performance.now();
  const steps = Math.min(flags.steps, (flags.minutes - 15) * 6 - 1);
  for (let i = 1; i <= steps; i++) {
    await new Promise<void>((resolve) => {
      waiting = { at: performance.now(), resolve };
      engine.onCommit({ watermark: new Date(t0 + 15 * 60_000 + i * 10_000), buckets: [], inserted: 0 });
    });
  }
  const wall = performance.now() - wall0;
  const cpu = process.cpuUsage(cpu0);
  const pgCpu = (await backendCpu(c)) - pgCpu0;
  const [{ rows }] = (await c.query<{ rows: number }>(`SELECT count(*)::int AS rows FROM window_aggregates`))
    .rows;
  const tradesPerStep = flags.rate * 10;
  const nodeMs = (cpu.user + cpu.system) / 1000 / steps;
  const pgMs = pgCpu >= 0 ? pgCpu / steps : NaN;
  const nsPerTrade = ((nodeMs + (pgMs || 0)) * 1e6) / tradesPerStep;
  const cell = (v: number, unit: string, width: number) => `${v.toFixed(1)} ${unit}`.padStart(width);
  process.stdout.write(
    [
      ``,
      `window engine alone: ${flags.symbols} symbols, ${flags.rate.toLocaleString()} trades per market second, ${steps} steps of 10 s`,
      `| step latency p50 | p99      | node CPU / step | Postgres CPU / step | engine CPU per trade |`,
      `|------------------|----------|-----------------|---------------------|----------------------|`,
      `| ${cell(pct(latencies, 50), "ms", 16)} | ${cell(pct(latencies, 99), "ms", 8)} | ${cell(nodeMs, "ms", 15)} | ${cell(pgMs, "ms", 19)} | ${cell(nsPerTrade, "ns", 20)} |`,
      ``,
      `(${rows.toLocaleString()} window rows; wall ${(wall / 1000).toFixed(1)} s for ${steps} steps = ${((steps * 10) / (wall / 1000)).toFixed(0)}x market speed)`,
      ``,
    ].join("\n"),
  );
  await paneMergeCost(c, perPane);
  await c.end();
  await ds.destroy();
}

/**
 * The per-trade part of the window work: merging each batch into panes inside the ingest statement.
 * Inserts the same batches of trades with the ingest's statement shape, with and without the pane merge,
 * and reports the difference per trade next to the insert's own cost.
 */
async function paneMergeCost(c: Client, perPane: number): Promise<void> {
  const batches = 40;
  const size = 5000;
  const run = async (withPanes: boolean) => {
    await c.query("TRUNCATE quotes, panes_10s");
    const t0 = Date.parse("2026-01-06T14:30:00Z");
    let ms = 0;
    for (let b = 0; b < batches; b++) {
      const rows = Array.from({ length: size }, (_, i) => {
        const n = b * size + i;
        return {
          symbol: `S${n % flags.symbols}`,
          t: new Date(t0 + Math.floor((n * 10_000) / (perPane * flags.symbols))),
          seq: n,
          price: 100 + (n % 97) / 10,
          size: 1 + (n % 300),
        };
      });
      const started = performance.now();
      await c.query(
        `WITH ins AS (
           INSERT INTO quotes (symbol, event_time, seq, price, size)
           SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::float8[], $5::int4[])
           ON CONFLICT (symbol, seq) DO NOTHING RETURNING symbol, event_time, seq, price, size)
         ${withPanes ? `, merged AS (${mergePanesSql("ins")})` : ""}
         SELECT count(*) FROM ins`,
        [
          rows.map((r) => r.symbol),
          rows.map((r) => r.t),
          rows.map((r) => r.seq),
          rows.map((r) => r.price),
          rows.map((r) => r.size),
        ],
      );
      ms += performance.now() - started;
    }
    return (ms * 1000) / (batches * size); // µs per trade
  };
  await run(true); // warm-up
  const without = await run(false);
  const withPanes = await run(true);
  process.stdout.write(
    [
      `pane merge inside the ingest statement (${batches} batches of ${size} trades, ${flags.symbols} symbols):`,
      `  insert alone ${without.toFixed(2)} µs/trade, with pane merge ${withPanes.toFixed(2)} µs/trade: ` +
        `the merge adds ${(withPanes - without).toFixed(2)} µs/trade (${(((withPanes - without) / withPanes) * 100).toFixed(0)}% of the statement)`,
      ``,
    ].join("\n"),
  );
}

/** CPU ms used by this database's Postgres backends so far (from /proc), or -1 where unreadable. */
async function backendCpu(c: Client): Promise<number> {
  const { rows } = await c.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`,
  );
  const ms = rows.reduce((sum, { pid }) => sum + procCpuMs(pid), 0);
  return Number.isFinite(ms) ? ms : -1;
}

main().catch((err) => {
  process.stderr.write(`bench:windows failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
