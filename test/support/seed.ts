import { Client } from "pg";

export interface SeedOptions {
  symbols: string[];
  perSymbol: number;
  /** Event time of the first quote of each symbol. */
  start?: Date;
  /** Milliseconds between a symbol's quotes. */
  stepMs?: number;
  /**
   * How far the market has come, as an ingest checkpoint records it: delays are measured against it.
   * @default a day after the newest quote (history, old enough for every delayed view); null: none
   * recorded, the newest quote is the market's now
   */
  marketNow?: Date | null;
}

/** The checkpoint stream seeded data is recorded under. */
const SEEDED_STREAM = "seeded";

/** Records that the market has reached `at` (the watermark trails it by 2 s, as ingest's does). */
export async function seedMarketNow(databaseUrl: string, at: Date): Promise<void> {
  const c = new Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    await c.query(
      `INSERT INTO ingest_checkpoints (stream, watermark) VALUES ($1, $2)
       ON CONFLICT (stream) DO UPDATE SET watermark = greatest(ingest_checkpoints.watermark, excluded.watermark)`,
      [SEEDED_STREAM, new Date(at.getTime() - 2000)],
    );
  } finally {
    await c.end();
  }
}

/** Inserts instruments and `perSymbol` quotes per symbol with one set-based statement each. */
export async function seedQuotes(databaseUrl: string, opts: SeedOptions): Promise<void> {
  const c = new Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    await c.query(
      `INSERT INTO instruments (symbol, name, exchange, sector)
       SELECT s, s || ' Inc.', 'NASDAQ', 'Technology' FROM unnest($1::text[]) s ON CONFLICT DO NOTHING`,
      [opts.symbols],
    );
    await c.query(
      `INSERT INTO quotes (symbol, event_time, seq, price, size, bid, bid_size, ask, ask_size, exchange)
       SELECT s, $2::timestamptz + (n * $3::int) * interval '1 millisecond', n,
              100 + (n % 50), 1 + n % 9, 99.99 + (n % 50), 2, 100.01 + (n % 50), 3, 'V'
       FROM unnest($1::text[]) s CROSS JOIN generate_series(1, $4::int) n`,
      [opts.symbols, opts.start ?? new Date("2026-01-05T14:30:00Z"), opts.stepMs ?? 1000, opts.perSymbol],
    );
  } finally {
    await c.end();
  }
  const newest =
    (opts.start ?? new Date("2026-01-05T14:30:00Z")).getTime() + (opts.stepMs ?? 1000) * opts.perSymbol;
  const marketNow = opts.marketNow === undefined ? new Date(newest + 86_400_000) : opts.marketNow;
  if (marketNow) await seedMarketNow(databaseUrl, marketNow);
}

/**
 * Inserts a window of `size` (ms long) for every symbol and end, with prices that differ by symbol and
 * end, so that each end has its own ranking. Needs the instruments to exist.
 */
export async function seedWindows(
  databaseUrl: string,
  opts: { symbols: string[]; ends: Date[]; size?: string; sizeMs?: number; marketNow?: Date | null },
): Promise<void> {
  const c = new Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    await c.query(
      `INSERT INTO window_aggregates (size, window_end, symbol, window_start, open, high, low, close,
                                     mean, vwap, volume, tick_count)
       SELECT $2::window_size, e, s, e - $3::int * interval '1 millisecond', p, p + 1, p - 1, p, p, p, 10, 5
       FROM unnest($1::text[]) WITH ORDINALITY AS sy(s, i)
       CROSS JOIN unnest($4::timestamptz[]) WITH ORDINALITY AS en(e, j)
       CROSS JOIN LATERAL (SELECT 100 + ((i * 7 + j * 3) % 50)::float8 AS p) v
       ON CONFLICT DO NOTHING`,
      [opts.symbols, opts.size ?? "ONE_MINUTE", opts.sizeMs ?? 60_000, opts.ends],
    );
  } finally {
    await c.end();
  }
  const last = Math.max(...opts.ends.map((e) => e.getTime()));
  const marketNow = opts.marketNow === undefined ? new Date(last + 86_400_000) : opts.marketNow;
  if (marketNow) await seedMarketNow(databaseUrl, marketNow);
}
