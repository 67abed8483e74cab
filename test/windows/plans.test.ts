import { Client } from "pg";
import { RankBy, WindowSize } from "../../src/windows/windows";
import { rankingsSql, windowChangesSql, windowPageSql } from "../../src/db/windows.repo";
import { createTestDatabase } from "../support/database";

// Window reads must use an index: a ranking reads one slice of the primary key, a page walks an index.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let c: Client;

beforeAll(async () => {
  db = await createTestDatabase();
  c = new Client({ connectionString: db.url });
  await c.connect();
  // A day of one-minute windows for 200 symbols (1.7 M rows would be realistic; 350 k is enough here).
  await c.query(`INSERT INTO window_aggregates (size, window_end, symbol, window_start, open, high, low, close, mean, vwap, volume, tick_count)
    SELECT s.size, e, 'S' || k, e - interval '60 seconds', 1, 2, 0.5, 1.5, 1 + k, 1, 10, 5
    FROM unnest(enum_range(NULL::window_size)) s(size),
         generate_series(timestamptz '2026-01-05 14:30Z', timestamptz '2026-01-05 14:30Z' + interval '1 hour', interval '10 seconds') e,
         generate_series(1, 200) k`);
  await c.query("ANALYZE window_aggregates");
});
afterAll(async () => {
  await c.end();
  await db.drop();
});

async function plan({ sql, params }: { sql: string; params: unknown[] }): Promise<string> {
  const { rows } = await c.query(`EXPLAIN ${sql}`, params);
  return rows.map((r) => r["QUERY PLAN"]).join("\n");
}

test("a ranking of one window reads one slice of the primary key", async () => {
  const end = new Date("2026-01-05T15:00:00Z");
  const p = await plan(
    rankingsSql({
      size: WindowSize.ONE_MINUTE,
      by: RankBy.MEAN,
      limit: 3,
      from: end,
      to: new Date(end.getTime() + 1),
    }),
  );
  expect(p).toMatch(/Index Scan using window_aggregates_pkey/);
  expect(p).not.toMatch(/Seq Scan/);
});

test("a page of one symbol's windows walks window_aggregates_symbol_idx without sorting", async () => {
  const p = await plan(
    windowPageSql({
      size: WindowSize.FIVE_MINUTES,
      symbols: ["S7"],
      order: "DESC",
      limit: 101,
      after: { endMs: "1767625200000", symbol: "S7" },
    }),
  );
  expect(p).toMatch(/Index Scan Backward using window_aggregates_symbol_idx/);
  expect(p).not.toMatch(/Sort|Seq Scan/);
});

test("a page across symbols walks the primary key without sorting", async () => {
  const p = await plan(windowPageSql({ size: WindowSize.ONE_MINUTE, order: "ASC", limit: 101 }));
  expect(p).toMatch(/Index Scan using window_aggregates_pkey/);
  expect(p).not.toMatch(/Sort|Seq Scan/);
});

test("a resumed windowAggregates stream walks window_aggregates_changes_idx from its cursor without sorting", async () => {
  const [{ us }] = (
    await c.query(
      `SELECT (extract(epoch FROM max(updated_at)) * 1000000)::int8::text AS us FROM window_aggregates`,
    )
  ).rows;
  const p = await plan(
    windowChangesSql({
      size: WindowSize.ONE_MINUTE,
      symbols: null,
      after: { updatedUs: us, endMs: "1767625200000", symbol: "S7" },
      limit: 1000,
    }),
  );
  expect(p).toMatch(/Index Scan using window_aggregates_changes_idx/);
  expect(p).not.toMatch(/Sort|Seq Scan/);
});
