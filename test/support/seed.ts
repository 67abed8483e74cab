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
