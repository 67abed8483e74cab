/** Pane width: windows hop by it and are merged from it. */
export const PANE_MS = 10_000;

/** Start of the 10-second pane holding `t` (panes are aligned to the Unix epoch). */
export function paneOf(t: number): number {
  return Math.floor(t / PANE_MS) * PANE_MS;
}

/**
 * Merges trades into `panes_10s`. `source` is a relation (a CTE name or a sub-select) with columns
 * symbol, event_time, seq, price, size, holding trades not merged before — e.g. the RETURNING of the
 * insert into quotes, so that a duplicate that lost the race on the unique key is never counted twice.
 */
export function mergePanesSql(source: string): string {
  return `INSERT INTO panes_10s AS p
      (symbol, bucket, n, px_sum, pv_sum, volume, high, low,
       open_px, open_ts, open_seq, close_px, close_ts, close_seq)
    SELECT symbol, bucket, n, px_sum, pv_sum, volume, high, low,
           o[3], open_ts, o[2]::int8, c[3], close_ts, c[2]::int8
    FROM (
      -- First and last trade by (event time, seq) in one pass: min/max over [µs since epoch, seq, price]
      -- (exact as float8 up to 2^53) instead of sorting each pane's trades per aggregate.
      SELECT symbol, date_bin('10 seconds', event_time, timestamptz 'epoch') AS bucket,
             count(*) AS n, sum(price) AS px_sum, sum(price * size) AS pv_sum, sum(size) AS volume,
             max(price) AS high, min(price) AS low,
             min(ARRAY[(extract(epoch FROM event_time) * 1000000)::float8, seq::float8, price]) AS o,
             max(ARRAY[(extract(epoch FROM event_time) * 1000000)::float8, seq::float8, price]) AS c,
             min(event_time) AS open_ts, max(event_time) AS close_ts
      FROM ${source} AS src
      GROUP BY 1, 2
    ) AS agg
    ON CONFLICT (symbol, bucket) DO UPDATE SET
      n = p.n + excluded.n,
      px_sum = p.px_sum + excluded.px_sum,
      pv_sum = p.pv_sum + excluded.pv_sum,
      volume = p.volume + excluded.volume,
      high = greatest(p.high, excluded.high),
      low = least(p.low, excluded.low),
      open_px = CASE WHEN (excluded.open_ts, excluded.open_seq) < (p.open_ts, p.open_seq) THEN excluded.open_px ELSE p.open_px END,
      open_seq = CASE WHEN (excluded.open_ts, excluded.open_seq) < (p.open_ts, p.open_seq) THEN excluded.open_seq ELSE p.open_seq END,
      open_ts = least(p.open_ts, excluded.open_ts),
      close_px = CASE WHEN (excluded.close_ts, excluded.close_seq) > (p.close_ts, p.close_seq) THEN excluded.close_px ELSE p.close_px END,
      close_seq = CASE WHEN (excluded.close_ts, excluded.close_seq) > (p.close_ts, p.close_seq) THEN excluded.close_seq ELSE p.close_seq END,
      close_ts = greatest(p.close_ts, excluded.close_ts)`;
}
