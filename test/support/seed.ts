import { Client } from "pg";

export interface SeedOptions {
  symbols: string[];
  perSymbol: number;
  /** Event time of the first quote of each symbol. */
  start?: Date;
  /** Milliseconds between a symbol's quotes. */
  stepMs?: number;
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
}

/**
 * Inserts a window of `size` (ms long) for every symbol and end, with prices that differ by symbol and
 * end, so that each end has its own ranking. Needs the instruments to exist.
 */
export async function seedWindows(
  databaseUrl: string,
  opts: { symbols: string[]; ends: Date[]; size?: string; sizeMs?: number },
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
}
