import { Client } from "pg";
import { ConfigError } from "../../src/config/config";
import { setLogLevel } from "../../src/log";
import { startPlatform } from "../../src/platform";
import { createTestDatabase } from "../support/database";
import { testConfig } from "../support/server";
import { until } from "./ingest.helpers";

beforeAll(() => setLogLevel("silent"));

interface Edge {
  symbol: string;
  seq: number;
  price: number;
  eventTime: Date;
}

type Db = { url: string };

async function query<T>(db: Db, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new Client({ connectionString: db.url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** Each symbol's trade at its lowest or highest seq. */
const edges = async (p: Db, order: "ASC" | "DESC"): Promise<Map<string, Edge>> =>
  new Map(
    (
      await query<Edge>(
        p,
        `SELECT DISTINCT ON (symbol) symbol, seq::int AS seq, price, event_time AS "eventTime"
         FROM quotes ORDER BY symbol, seq ${order}`,
      )
    ).map((e) => [e.symbol, e]),
  );

/** Windows that were final under `watermark` (their end plus the allowed lateness behind it). */
const finalWindows = (p: Db, watermark: Date) =>
  query<Record<string, unknown>>(
    p,
    `SELECT size, symbol, window_end, revision, open, high, low, close, volume, tick_count
     FROM window_aggregates WHERE window_end + interval '30 seconds' <= $1
     ORDER BY size, symbol, window_end`,
    [watermark],
  );

test("the embedded market started again with other flags continues the stored market: clock, prices, seq; past windows stay", async () => {
  const db = await createTestDatabase();
  const config = testConfig(db.url);
  // A day ahead of the wall clock, at 20,000x: the stored market ends hours past its start, and its prices
  // have moved well away from where the seed's path opens them.
  const start = new Date(Math.ceil(Date.now() / 86_400_000 + 1) * 86_400_000);
  try {
    const first = await startPlatform(config, {
      feed: { seed: 4, symbols: 8, rate: 300, speed: 20_000, start },
    });
    try {
      await until("trades", () => (first.ingest!.counts().accepted.trades > 600 ? true : undefined), 30_000);
      await first.ingest!.close();
    } finally {
      await first.close();
    }
    const opening = await edges(db, "ASC");
    const last = await edges(db, "DESC");
    const [{ watermark }] = await query<{ watermark: Date }>(
      db,
      `SELECT watermark FROM ingest_checkpoints WHERE stream = 'embedded-mock'`,
    );
    const newest = Math.max(...[...last.values()].map((e) => e.eventTime.getTime()));
    const past = await finalWindows(db, watermark);
    expect(last.size).toBe(8);
    expect(past.length).toBeGreaterThan(0);
    // Rounding to the cent and a few seconds of a random walk: far less than the first run moved.
    const tolerance = (p: number) => 0.01 + p * 0.002;
    const drifted = [...last.values()].filter(
      (e) => Math.abs(e.price - opening.get(e.symbol)!.price) > 5 * tolerance(e.price),
    );
    expect(drifted.length).toBeGreaterThan(0);

    // Another seed, speed, rate and universe size; no --feed-start: the market continues.
    const second = await startPlatform(config, { feed: { seed: 9, symbols: 10, rate: 1000, speed: 1 } });
    try {
      expect(second.feed!.clock().getTime()).toBeGreaterThan(newest);
      await until(
        "new trades of every stored symbol",
        async () => {
          const now = await edges(db, "DESC");
          return [...last.values()].every((e) => now.get(e.symbol)!.seq > e.seq) ? true : undefined;
        },
        30_000,
      );
    } finally {
      await second.close();
    }

    // Per symbol: seq 1, 2, 3, … with no gap, and event time never going back along seq.
    const shape = await query<{ symbol: string; n: number; lo: number; hi: number; back: number }>(
      db,
      `SELECT symbol, count(*)::int AS n, min(seq)::int AS lo, max(seq)::int AS hi,
              count(*) FILTER (WHERE event_time < prev)::int AS back
       FROM (SELECT symbol, seq, event_time,
                    lag(event_time) OVER (PARTITION BY symbol ORDER BY seq) AS prev FROM quotes) t
       GROUP BY symbol ORDER BY symbol`,
    );
    expect(shape.length).toBeGreaterThanOrEqual(8);
    for (const s of shape) expect(s).toEqual({ symbol: s.symbol, n: s.hi, lo: 1, hi: s.hi, back: 0 });

    // Each symbol's next trade follows its last stored one in time and picks its price up from there.
    const resumed = await query<Edge>(
      db,
      `SELECT q.symbol, q.seq::int AS seq, q.price, q.event_time AS "eventTime"
       FROM quotes q JOIN unnest($1::text[], $2::bigint[]) AS l(symbol, seq)
         ON q.symbol = l.symbol AND q.seq = l.seq + 1`,
      [[...last.keys()], [...last.values()].map((e) => e.seq)],
    );
    expect(resumed).toHaveLength(8);
    for (const r of resumed) {
      const before = last.get(r.symbol)!;
      expect(r.eventTime.getTime()).toBeGreaterThan(newest);
      expect(Math.abs(r.price - before.price)).toBeLessThanOrEqual(tolerance(before.price));
    }
    // The first run's final windows are as they were: nothing the second run wrote fell into them.
    expect(await finalWindows(db, watermark)).toEqual(past);

    // Asking for a start inside the stored history is refused, saying why and what to do.
    const refused = startPlatform(testConfig(db.url), { feed: { seed: 4, symbols: 8, start } });
    await expect(refused).rejects.toBeInstanceOf(ConfigError);
    await expect(refused).rejects.toThrow(/before the newest stored trade .*Leave --feed-start out/);
  } finally {
    await db.drop();
  }
});
