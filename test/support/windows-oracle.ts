/**
 * Every window of every size computed straight from raw quotes (GROUP BY over each window's time range):
 * what the window engine must store. Columns: size, windowEnd, symbol, n, volume, mean, vwap, high, low,
 * open, close.
 */
export const ORACLE = `
  SELECT s.size::text AS size, e.window_end AS "windowEnd", q.symbol,
         count(*)::int AS n, sum(q.size)::float8 AS volume, avg(q.price) AS mean,
         sum(q.price * q.size) / nullif(sum(q.size), 0) AS vwap, max(q.price) AS high, min(q.price) AS low,
         (array_agg(q.price ORDER BY q.event_time, q.seq))[1] AS open,
         (array_agg(q.price ORDER BY q.event_time DESC, q.seq DESC))[1] AS close
  FROM (VALUES ('ONE_MINUTE', 60), ('FIVE_MINUTES', 300), ('FIFTEEN_MINUTES', 900)) AS s(size, secs)
  CROSS JOIN quotes q
  CROSS JOIN LATERAL generate_series(
    date_bin('10 seconds', q.event_time, timestamptz 'epoch') + interval '10 seconds',
    date_bin('10 seconds', q.event_time, timestamptz 'epoch') + s.secs * interval '1 second',
    interval '10 seconds') AS e(window_end)
  WHERE q.event_time >= e.window_end - s.secs * interval '1 second' AND q.event_time < e.window_end
  GROUP BY s.size, e.window_end, q.symbol`;
