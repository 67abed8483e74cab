import type { DataSource } from "typeorm";
import { createDataSource } from "../../src/db/data-source";
import { Prng } from "../../src/feed/prng";
import { paneOf } from "../../src/core/market";
import { mergePanesSql } from "../../src/db/panes.repo";
import { WindowEngine, type WindowsEvent } from "../../src/windows/window.engine";
import { ALLOWED_LATENESS_MS, RankBy, WindowSize } from "../../src/windows/windows";
import { WindowsRepo } from "../../src/db/windows.repo";
import { createTestDatabase } from "../support/database";
import { ORACLE } from "../support/windows-oracle";

// For random feeds with out-of-order, duplicate and late trades, every final window must equal the same
// aggregate computed by plain SQL over the raw quotes in it, and every ranking ORDER BY … LIMIT over those.

interface Trade {
  symbol: string;
  t: number;
  seq: number;
  price: number;
  size: number;
}

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let ds: DataSource;

beforeAll(async () => {
  db = await createTestDatabase();
  ds = createDataSource({ url: db.url, statementTimeoutMs: 30_000, poolSize: 4 });
  await ds.initialize();
});
afterAll(async () => {
  await ds.destroy();
  await db.drop();
});

/** A seeded market: trades in event time, then the order they arrive in (shuffled, late, repeated). */
function market(seed: number): { trades: Trade[]; arrivals: Trade[] } {
  const rng = new Prng(seed);
  const symbols = Array.from({ length: rng.int(3, 7) }, (_, i) => `S${seed}X${i}`);
  const t0 = Date.parse("2026-03-02T14:30:00Z") + rng.int(0, 600_000);
  const duration = rng.int(6, 12) * 60_000;
  const coarse = rng.chance(0.5); // many equal timestamps: (time, seq) must break the ties
  const raw = Array.from({ length: rng.int(400, 1200) }, () => {
    const t = t0 + rng.int(0, duration);
    return { symbol: rng.pick(symbols), t: coarse ? t - (t % 500) : t };
  }).sort((a, b) => a.t - b.t);
  const seq = new Map<string, number>();
  const px = new Map(symbols.map((s) => [s, rng.uniform(20, 500)]));
  const trades = raw.map(({ symbol, t }) => {
    const p = px.get(symbol)! * (1 + rng.uniform(-0.01, 0.01));
    px.set(symbol, p);
    const n = (seq.get(symbol) ?? 0) + 1;
    seq.set(symbol, n);
    return {
      symbol,
      t,
      seq: n,
      price: Math.round(p * 100) / 100,
      size: rng.chance(0.03) ? 0 : rng.int(1, 500),
    };
  });
  // Arrival: mostly in order, some a few seconds out of order, some 15–90 s late, some twice.
  const keyed = trades.map((tr) => {
    const r = rng.next();
    const delay = r < 0.05 ? rng.int(15_000, 90_000) : r < 0.15 ? rng.int(0, 5_000) : 0;
    return { tr, at: tr.t + delay };
  });
  const dupes = keyed
    .filter(() => rng.chance(0.02))
    .map(({ tr, at }) => ({ tr, at: at + rng.int(0, 3_000) }));
  const arrivals = [...keyed, ...dupes].sort((a, b) => a.at - b.at).map((k) => k.tr);
  return { trades, arrivals };
}

/** Ingests like the ingest loop: LATE rule, batched insert + pane merge in one statement, commit report. */
async function ingest(
  arrivals: Trade[],
  engine: WindowEngine,
  rng: Prng,
): Promise<{ late: Trade[]; maxT: number }> {
  let watermark: number | null = null;
  let maxT = -Infinity;
  const late: Trade[] = [];
  for (let i = 0; i < arrivals.length;) {
    const batch: Trade[] = [];
    for (const end = i + rng.int(1, 60); i < Math.min(end, arrivals.length); i++) {
      const tr = arrivals[i];
      if (watermark !== null && paneOf(tr.t) + 10_000 + ALLOWED_LATENESS_MS <= watermark) {
        late.push(tr);
        continue;
      }
      batch.push(tr);
      maxT = Math.max(maxT, tr.t);
      watermark = maxT - 2_000;
    }
    const [{ buckets }] = await ds.query(
      `WITH ins AS (
         INSERT INTO quotes (symbol, event_time, seq, price, size)
         SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::float8[], $5::int4[])
         ON CONFLICT (symbol, seq) DO NOTHING
         RETURNING symbol, event_time, seq, price, size),
       merged AS (${mergePanesSql("ins")})
       SELECT coalesce(array_agg(DISTINCT date_bin('10 seconds', event_time, timestamptz 'epoch')), '{}') AS buckets FROM ins`,
      [
        batch.map((b) => b.symbol),
        batch.map((b) => new Date(b.t)),
        batch.map((b) => b.seq),
        batch.map((b) => b.price),
        batch.map((b) => b.size),
      ],
    );
    engine.onCommit({
      watermark: watermark === null ? null : new Date(watermark),
      buckets,
      inserted: batch.length,
    });
    if (rng.chance(0.3)) await engine.idle();
  }
  return { late, maxT };
}

const close = (a: number | null, b: number | null) =>
  a === b || (a !== null && b !== null && Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b)));

const totals = { revised: 0, late: 0, windows: 0, cases: 0 };

test.each(Array.from({ length: 12 }, (_, i) => [1000 + i]))("random feed, seed %i", async (seed) => {
  await ds.query("TRUNCATE quotes, panes_10s, window_aggregates, window_progress");
  const rng = new Prng(seed * 7919);
  const { trades, arrivals } = market(seed);
  const events: WindowsEvent[] = [];
  const engine = new WindowEngine(ds, { maxEndsPerStep: rng.int(3, 400), onWindows: (e) => events.push(e) });
  await engine.start();
  const { late, maxT } = await ingest(arrivals, engine, rng);
  // Let the watermark pass every window's end and lateness: all windows are then final.
  engine.onCommit({ watermark: new Date(maxT + 20 * 60_000), buckets: [], inserted: 0 });
  await engine.idle();

  const stored = await ds.query(
    `SELECT size::text AS size, window_end AS "windowEnd", symbol, tick_count AS n, volume, mean, vwap, high, low,
            open, close, window_end <= (SELECT final_until FROM window_progress) AS final, revision,
            window_start AS "windowStart" FROM window_aggregates`,
  );
  const oracle = await ds.query(ORACLE);
  const key = (r: { size: string; windowEnd: Date; symbol: string }) =>
    `${r.size}|${r.windowEnd.toISOString()}|${r.symbol}`;
  const want = new Map<string, Record<string, number>>(oracle.map((r: never) => [key(r), r]));
  expect(stored.length).toBe(oracle.length);
  for (const w of stored) {
    const o = want.get(key(w));
    expect(o).toBeDefined();
    expect(w.final).toBe(true);
    expect(w.windowEnd.getTime() - w.windowStart.getTime()).toBe(
      { ONE_MINUTE: 60, FIVE_MINUTES: 300, FIFTEEN_MINUTES: 900 }[w.size as "ONE_MINUTE"]! * 1000,
    );
    expect({ n: w.n, volume: w.volume, high: w.high, low: w.low, open: w.open, close: w.close }).toEqual({
      n: o!.n,
      volume: o!.volume,
      high: o!.high,
      low: o!.low,
      open: o!.open,
      close: o!.close,
    });
    if (!close(w.mean, o!.mean) || !close(w.vwap, o!.vwap)) {
      throw new Error(`${key(w)}: mean ${w.mean} vs ${o!.mean}, vwap ${w.vwap} vs ${o!.vwap}`);
    }
  }

  // Events account for every row: each was opened once, and each revision was published.
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  expect(sum(events.flatMap((e) => e.opened.map((o) => o.count)))).toBe(stored.length);
  expect(sum(events.flatMap((e) => e.revised.map((r) => r.symbols.length)))).toBe(
    sum(stored.map((w: { revision: number }) => w.revision)),
  );
  expect(events.at(-1)!.finalUntil!.getTime()).toBeGreaterThanOrEqual(
    Math.max(...stored.map((w: { windowEnd: Date }) => w.windowEnd.getTime())),
  );

  // Stored trades are exactly those not late; late ones were never stored.
  const [{ n }] = await ds.query("SELECT count(*)::int AS n FROM quotes");
  const lateKeys = new Set(late.map((t) => `${t.symbol}|${t.seq}`));
  expect(n).toBe(trades.filter((t) => !lateKeys.has(`${t.symbol}|${t.seq}`)).length);

  // Rankings: ORDER BY mean DESC, symbol LIMIT 3 over the oracle, for every window.
  const repo = new WindowsRepo(ds);
  for (const size of Object.values(WindowSize)) {
    const first = new Date(Math.min(...trades.map((t) => t.t)) - 1_000_000);
    const last = new Date(maxT + 1_000_000);
    for (const by of [RankBy.MEAN, RankBy.HIGH]) {
      const got = await repo.rankings({ size, by, limit: 3, from: first, to: last });
      const byEnd = new Map<string, { symbol: string; v: number }[]>();
      for (const o of oracle.filter((r: { size: string }) => r.size === size)) {
        const list = byEnd.get(o.windowEnd.toISOString()) ?? [];
        list.push({ symbol: o.symbol, v: by === RankBy.MEAN ? o.mean : o.high });
        byEnd.set(o.windowEnd.toISOString(), list);
      }
      const expected = [...byEnd.entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .flatMap(([end, list]) =>
          list
            .sort((a, b) => b.v - a.v || (a.symbol < b.symbol ? -1 : 1))
            .slice(0, 3)
            .map((e, i) => `${end}|${i + 1}|${e.symbol}`),
        );
      expect(got.map((g) => `${g.windowEnd.toISOString()}|${g.rank}|${g.symbol}`)).toEqual(expected);
    }
  }
  totals.revised += stored.filter((w: { revision: number }) => w.revision > 0).length;
  totals.late += late.length;
  totals.windows += stored.length;
  totals.cases++;
});

test("the random feeds exercised revisions and LATE trades", () => {
  expect(totals.cases).toBe(12);
  expect(totals.revised).toBeGreaterThan(0);
  expect(totals.late).toBeGreaterThan(0);
  expect(totals.windows).toBeGreaterThan(1000);
});
