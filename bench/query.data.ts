import { Client } from "pg";
import { createDataSource, migrate } from "../src/db/data-source";

/** The bench's symbols: S000, S001, … */
export const symbolName = (i: number): string => `S${String(i).padStart(3, "0")}`;

/** Principal of the bench's tokens; granted REALTIME, as a BI tool's service account would be. */
export const BENCH_PRINCIPAL = "bench";

/** The checkpoint stream the loaded history is recorded under. */
const BENCH_STREAM = "bench";

/**
 * Makes `url` hold `rows` quotes over `symbols` symbols (quotes 100 ms apart, every symbol over the same
 * span of market time), their 10-second panes and the window aggregates of every size derived from them,
 * as the window engine stores them; loads only what is missing or different.
 */
export async function ensureQueryData(
  url: string,
  rows: number,
  symbols: number,
  log: (line: string) => void,
) {
  const ds = createDataSource({ url, statementTimeoutMs: 600_000, poolSize: 1 });
  await ds.initialize();
  await migrate(ds);
  await ds.destroy();
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    const count = async (sql: string) => Number((await c.query<{ n: string }>(sql)).rows[0].n);
    const fresh =
      (await count("SELECT count(*) AS n FROM quotes")) !== rows ||
      (await count("SELECT count(*) AS n FROM instruments")) !== symbols;
    if (fresh) {
      log(`loading ${rows.toLocaleString()} quotes over ${symbols} symbols…`);
      const names = Array.from({ length: symbols }, (_, i) => symbolName(i));
      await c.query("TRUNCATE quotes, instruments, panes_10s, window_aggregates RESTART IDENTITY");
      await c.query(
        `INSERT INTO instruments (symbol, name, exchange, sector)
         SELECT s, s || ' Corp', 'NYSE', 'Industrials' FROM unnest($1::text[]) s`,
        [names],
      );
      await c.query(
        `INSERT INTO quotes (symbol, event_time, seq, price, size, bid, bid_size, ask, ask_size, exchange)
         SELECT s, timestamptz '2026-01-05 14:30:00Z' + n * interval '100 milliseconds', n,
                100 + (n % 997) / 10.0, 1 + n % 500, 99.9, 3, 100.1, 4, 'V'
         FROM unnest($1::text[]) s CROSS JOIN generate_series(1, $2::int) n LIMIT $3`,
        [names, Math.ceil(rows / symbols), rows],
      );
      await c.query("VACUUM ANALYZE quotes");
    }
    if (fresh || (await count("SELECT count(*) AS n FROM window_aggregates")) === 0) {
      log("deriving 10-second panes and window aggregates…");
      await deriveWindows(c);
    }
    // The history is a day old on the market clock: every delayed view could see all of it, so a delay
    // wrongly applied would not show in the pages; the bench checks `delayed` instead.
    await c.query(
      `INSERT INTO ingest_checkpoints (stream, watermark)
       SELECT $1, max(event_time) + interval '1 day' - interval '2 seconds' FROM quotes
       ON CONFLICT (stream) DO UPDATE SET watermark = excluded.watermark`,
      [BENCH_STREAM],
    );
    await c.query(
      `INSERT INTO grants (principal, entitlement, granted_by) VALUES ($1, 'REALTIME', 'bench-owner')
       ON CONFLICT (principal, entitlement) WHERE revoked_at IS NULL DO NOTHING`,
      [BENCH_PRINCIPAL],
    );
  } finally {
    await c.end();
  }
}

/**
 * Panes and windows as the engine defines them: a 10-second pane per symbol and bucket; a window of each
 * size ending every 10 s, the merge of the panes in [end − size, end), open/close by (event time, seq).
 */
async function deriveWindows(c: Client): Promise<void> {
  await c.query("TRUNCATE panes_10s, window_aggregates");
  await c.query(
    `INSERT INTO panes_10s (symbol, bucket, n, px_sum, pv_sum, volume, high, low,
                            open_px, open_ts, open_seq, close_px, close_ts, close_seq)
     SELECT symbol, bucket, count(*), sum(price), sum(price * size), sum(size), max(price), min(price),
            (array_agg(price ORDER BY event_time, seq))[1], min(event_time),
            (array_agg(seq ORDER BY event_time, seq))[1],
            (array_agg(price ORDER BY event_time DESC, seq DESC))[1], max(event_time),
            (array_agg(seq ORDER BY event_time DESC, seq DESC))[1]
     FROM (SELECT *, to_timestamp(floor(extract(epoch FROM event_time) / 10) * 10) AS bucket FROM quotes) q
     GROUP BY symbol, bucket`,
  );
  await c.query(
    `INSERT INTO window_aggregates (size, window_end, symbol, window_start, open, high, low, close,
                                   mean, vwap, volume, tick_count)
     SELECT size, window_end, symbol, window_end - panes * interval '10 seconds',
            (array_agg(open_px ORDER BY open_ts, open_seq))[1], max(high), min(low),
            (array_agg(close_px ORDER BY close_ts DESC, close_seq DESC))[1],
            sum(px_sum) / sum(n), CASE WHEN sum(volume) > 0 THEN sum(pv_sum) / sum(volume) END,
            sum(volume), sum(n)
     FROM (VALUES ('ONE_MINUTE'::window_size, 6), ('FIVE_MINUTES', 30), ('FIFTEEN_MINUTES', 90)) z(size, panes)
     CROSS JOIN panes_10s p
     CROSS JOIN LATERAL (SELECT p.bucket + k * interval '10 seconds' AS window_end
                         FROM generate_series(1, z.panes) k) e
     GROUP BY size, window_end, symbol, panes`,
  );
  await c.query(
    `INSERT INTO window_progress (id, emitted_until, final_until)
     SELECT 1, max(window_end), max(window_end) FROM window_aggregates
     ON CONFLICT (id) DO UPDATE SET emitted_until = excluded.emitted_until, final_until = excluded.final_until`,
  );
  await c.query("VACUUM ANALYZE panes_10s, window_aggregates");
}
