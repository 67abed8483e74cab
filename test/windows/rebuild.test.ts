import { execFileSync } from "node:child_process";
import { join } from "node:path";
import type { DataSource } from "typeorm";
import { createDataSource } from "../../src/db/data-source";
import { rebuildWindows } from "../../src/windows/rebuild";
import { createTestDatabase } from "../support/database";
import { seedQuotes } from "../support/seed";
import { ORACLE } from "../support/windows-oracle";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let ds: DataSource;

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource({ url: db.url, statementTimeoutMs: 30_000, poolSize: 2 });
  await ds.initialize();
  // Quotes stored without panes or windows, as after a backfill straight into the table.
  await seedQuotes(db.url, { symbols: ["AAA", "BBB", "CCC"], perSymbol: 400, stepMs: 1700 });
  await ds.query(
    `INSERT INTO window_progress (id, emitted_until, final_until) VALUES (1, '2026-01-06', '2026-01-06')`,
  );
});
afterAll(async () => {
  await ds.destroy();
  await db.drop();
});

async function windowsMatchOracle(): Promise<number> {
  const oracle: { size: string; windowEnd: Date; symbol: string; n: number }[] = await ds.query(ORACLE);
  const stored: typeof oracle = await ds.query(
    `SELECT size::text AS size, window_end AS "windowEnd", symbol, tick_count AS n FROM window_aggregates`,
  );
  const key = (r: (typeof oracle)[number]) => `${r.size}|${r.windowEnd.toISOString()}|${r.symbol}|${r.n}`;
  expect(stored.map(key).sort()).toEqual(oracle.map(key).sort());
  return stored.length;
}

test("rebuild-windows recomputes panes and windows from stored quotes, reporting progress", async () => {
  const progress: number[] = [];
  const r = await rebuildWindows(ds, new Date("2026-01-05T14:00:00Z"), new Date("2026-01-05T16:00:00Z"), {
    chunkMs: 1_800_000,
    onProgress: (done) => progress.push(done),
  });
  expect(progress).toEqual([1, 2, 3, 4, 5]);
  expect(r.windowsChanged).toBeGreaterThan(0);
  expect(await windowsMatchOracle()).toBe(r.windowsChanged);
});

test("a second rebuild after quotes were removed revises and removes exactly the affected windows", async () => {
  await ds.query(`DELETE FROM quotes WHERE symbol = 'CCC' AND seq > 100`);
  const r = await rebuildWindows(ds, new Date("2026-01-05T14:00:00Z"), new Date("2026-01-05T16:00:00Z"));
  expect(r.windowsRemoved).toBeGreaterThan(0);
  await windowsMatchOracle();
  const [{ revised }] = await ds.query(
    `SELECT count(*)::int AS revised FROM window_aggregates WHERE revision > 0`,
  );
  expect(revised).toBeGreaterThan(0);
});

test("the CLI command runs it with a progress bar and refuses a bad range", () => {
  const bin = join(__dirname, "..", "..", "bin", "tickgraph.js");
  const env = { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: "silent" };
  const out = execFileSync(
    process.execPath,
    [bin, "rebuild-windows", "--from", "2026-01-05T14:00:00Z", "--to", "2026-01-05T15:00:00Z"],
    { env },
  ).toString();
  expect(out).toMatch(/rebuilt \d+ panes; \d+ windows changed, \d+ removed/);
  expect(() =>
    execFileSync(
      process.execPath,
      [bin, "rebuild-windows", "--from", "yesterday", "--to", "2026-01-05T15:00:00Z"],
      { env, stdio: "pipe" },
    ),
  ).toThrow(/is not an ISO-8601 instant/);
});
