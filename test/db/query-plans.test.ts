import { Client } from "pg";
import { LATEST_QUOTES_DELAYED_SQL, LATEST_QUOTES_SQL, quotePageSql } from "../../src/db/market.repo";
import { createTestDatabase } from "../support/database";
import { seedQuotes } from "../support/seed";

// The hot statements of the read API must walk an index in order, never sort or scan the table.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let c: Client;

beforeAll(async () => {
  db = await createTestDatabase();
  await seedQuotes(db.url, { symbols: Array.from({ length: 40 }, (_, i) => `S${i}`), perSymbol: 2000 });
  c = new Client({ connectionString: db.url });
  await c.connect();
  await c.query("ANALYZE");
});
afterAll(async () => {
  await c.end();
  await db.drop();
});

async function plan(sql: string, params: unknown[]): Promise<string> {
  const { rows } = await c.query(`EXPLAIN ${sql}`, params);
  return rows.map((r) => r["QUERY PLAN"]).join("\n");
}

test.each([
  ["one symbol, newest first", { symbols: ["S3"], order: "DESC" as const, limit: 101 }],
  [
    "one symbol, after a cursor",
    {
      symbols: ["S3"],
      order: "DESC" as const,
      limit: 101,
      after: { eventUs: "1767623400000000", id: "4000" },
    },
  ],
  [
    "one symbol, ascending in a range",
    {
      symbols: ["S3"],
      order: "ASC" as const,
      limit: 101,
      from: new Date("2026-01-05T14:40:00Z"),
      to: new Date("2026-01-05T15:00:00Z"),
    },
  ],
  [
    "one symbol, delayed, after a cursor",
    {
      symbols: ["S3"],
      order: "DESC" as const,
      limit: 101,
      notAfter: new Date("2026-01-05T15:00:00Z"),
      after: { eventUs: "1767626400000000", id: "4000" },
    },
  ],
])("quotes page (%s) uses quotes_symbol_time_idx without a sort", async (_name, q) => {
  const { sql, params } = quotePageSql(q);
  const p = await plan(sql, params);
  expect(p).toMatch(/Index Scan( Backward)? using quotes_symbol_time_idx/);
  expect(p).not.toMatch(/Sort|Seq Scan/);
});

test("quotes page across all symbols uses quotes_time_idx without a sort", async () => {
  const { sql, params } = quotePageSql({ order: "DESC", limit: 101 });
  const p = await plan(sql, params);
  expect(p).toMatch(/Index Scan Backward using quotes_time_idx/);
  expect(p).not.toMatch(/Sort|Seq Scan/);
});

test("delayed page across all symbols walks quotes_time_idx from the cutoff", async () => {
  const { sql, params } = quotePageSql({
    order: "DESC",
    limit: 101,
    notAfter: new Date("2026-01-05T15:00:00Z"),
  });
  const p = await plan(sql, params);
  expect(p).toMatch(/Index Scan Backward using quotes_time_idx/);
  expect(p).toMatch(/Index Cond: \(event_time <= /);
  expect(p).not.toMatch(/Sort|Seq Scan/);
});

test("the delay cutoff is an index condition, not a filter", async () => {
  const { sql, params } = quotePageSql({
    symbols: ["S3"],
    order: "DESC",
    limit: 101,
    notAfter: new Date("2026-01-05T15:00:00Z"),
  });
  const p = await plan(sql, params);
  expect(p).toMatch(/Index Cond: \(\(symbol = .*\) AND \(event_time <= /);
  expect(p).not.toMatch(/Filter/);
});

test("cursor condition is an index condition, not a filter", async () => {
  const { sql, params } = quotePageSql({
    symbols: ["S3"],
    order: "DESC",
    limit: 101,
    after: { eventUs: "1767623400000000", id: "4000" },
  });
  const { rows } = await c.query(`EXPLAIN ${sql}`, params);
  const text = rows.map((r) => r["QUERY PLAN"]).join("\n");
  expect(text).toMatch(/Index Cond: \(\(symbol = .*\) AND \(ROW\(event_time, id\) </);
});

test.each([
  ["real time", LATEST_QUOTES_SQL, [["S1", "S2"]]],
  ["delayed", LATEST_QUOTES_DELAYED_SQL, [["S1", "S2"], new Date("2026-01-05T14:40:00Z")]],
])("latest quote per symbol (%s) probes the index once per symbol", async (_name, sql, params) => {
  const p = await plan(sql as string, params as unknown[]);
  expect(p).toMatch(/Index Scan Backward using quotes_symbol_time_idx/);
  expect(p).not.toMatch(/Sort|Seq Scan|Filter/);
});

test("a quotes page asked for some columns reads only those, instants as the API writes them", async () => {
  const { sql, params } = quotePageSql({
    symbols: ["S1"],
    order: "DESC",
    limit: 3,
    columns: ["price", "eventTime", "price"],
  });
  expect(sql).toMatch(
    /^SELECT price, to_char\(event_time AT TIME ZONE 'UTC', [^)]+\) AS "eventTime" FROM quotes/,
  );
  const { rows } = await c.query(sql, params);
  const full = await c.query(
    `SELECT price, event_time FROM quotes WHERE symbol = 'S1' ORDER BY event_time DESC, id DESC LIMIT 3`,
  );
  expect(rows).toEqual(
    full.rows.map((r: { price: number; event_time: Date }) => ({
      price: r.price,
      eventTime: r.event_time.toISOString(),
    })),
  );
});
