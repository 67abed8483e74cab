import type { DataSource } from "typeorm";
import { sqlOf, type Sql } from "../db/sql";
import { RANK_COLUMN, WindowSize, type MoverRow, type RankBy, type WindowRow } from "./windows";

/** Columns of window_aggregates as WindowRow fields. */
const WINDOW_COLUMNS = `symbol, size, window_start AS "windowStart", window_end AS "windowEnd",
  open, high, low, close, mean, vwap, volume, tick_count AS "tickCount", revision,
  coalesce(window_end <= (SELECT final_until FROM window_progress WHERE id = 1), false) AS final`;

export interface WindowPageQuery {
  size: WindowSize;
  symbols?: string[];
  /** Window ends in [from, to). */
  from?: Date;
  to?: Date;
  /** Only windows with one of these ends. */
  ends?: Date[];
  /** Delay cutoff: only windows ending at or before it. */
  notAfter?: Date;
  after?: { endMs: string; symbol: string };
  order: "ASC" | "DESC";
  limit: number;
}

export interface RankingQuery {
  size: WindowSize;
  by: RankBy;
  limit: number;
  /** Window ends in [from, to). */
  from: Date;
  to: Date;
  /** Only tumbling windows: ends that are multiples of this many ms. */
  everyMs?: number;
}

/** A ranked window aggregate: `rank` is 1-based within its window. */
export type RankedRow = WindowRow & { rank: number };

/** Reads of stored windows, rankings and movers. Rankings order by the measure, ties by symbol. */
export class WindowsRepo {
  private readonly sql: Sql;

  constructor(ds: DataSource) {
    this.sql = sqlOf(ds);
  }

  page(q: WindowPageQuery): Promise<WindowRow[]> {
    const { sql, params } = windowPageSql(q);
    return this.sql.query(sql, params);
  }

  /** End of the latest stored window of `size` ending at or before `at` (any, when null). */
  async latestEnd(size: WindowSize, at: Date | null, everyMs?: number): Promise<Date | null> {
    const params: unknown[] = [size];
    let sql = `SELECT window_end AS "end" FROM window_aggregates WHERE size = $1::window_size`;
    if (at) sql += ` AND window_end <= $${params.push(at)}`;
    if (everyMs) sql += ` AND ${tumbling(everyMs)}`;
    const rows = await this.sql.query<{ end: Date }>(`${sql} ORDER BY window_end DESC LIMIT 1`, params);
    return rows[0]?.end ?? null;
  }

  /** The top `limit` symbols of every window with an end in [from, to), oldest window first. */
  rankings(q: RankingQuery): Promise<RankedRow[]> {
    const { sql, params } = rankingsSql(q);
    return this.sql.query(sql, params);
  }

  /** Every symbol's open and close in one window, for WINDOW-basis movers. */
  windowMovers(size: WindowSize, windowEnd: Date, minVolume: number): Promise<MoverRow[]> {
    return this.sql.query(
      `SELECT symbol, close AS price, open AS "referencePrice", volume FROM window_aggregates
       WHERE size = $1::window_size AND window_end = $2 AND volume >= $3`,
      [size, windowEnd, minVolume],
    );
  }

  /**
   * Every symbol's latest price up to `asOf` against the previous session's close (the last trade before
   * asOf's UTC day began), with the session's volume; read from panes, one index probe per symbol.
   */
  sessionMovers(asOf: Date, minVolume: number): Promise<MoverRow[]> {
    return this.sql.query(
      `WITH day AS (SELECT date_trunc('day', $1::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS start)
       SELECT i.symbol, now_p.close_px AS price, ref.close_px AS "referencePrice", vol.volume
       FROM instruments i CROSS JOIN day
       CROSS JOIN LATERAL (SELECT close_px FROM panes_10s p WHERE p.symbol = i.symbol AND p.bucket >= day.start
                           AND p.bucket <= $1 ORDER BY p.bucket DESC LIMIT 1) now_p
       CROSS JOIN LATERAL (SELECT close_px FROM panes_10s p WHERE p.symbol = i.symbol AND p.bucket < day.start
                           ORDER BY p.bucket DESC LIMIT 1) ref
       CROSS JOIN LATERAL (SELECT sum(volume) AS volume FROM panes_10s p WHERE p.symbol = i.symbol
                           AND p.bucket >= day.start AND p.bucket <= $1) vol
       WHERE vol.volume >= $2`,
      [asOf, minVolume],
    );
  }

  /** The newest pane start at or before `at` (any, when null): how far the market has come. */
  async latestPane(at: Date | null): Promise<Date | null> {
    const rows = await this.sql.query<{ b: Date | null }>(
      at
        ? `SELECT max(bucket) AS b FROM panes_10s WHERE bucket <= $1`
        : `SELECT max(bucket) AS b FROM panes_10s`,
      at ? [at] : [],
    );
    return rows[0]?.b ?? null;
  }
}

/** Ends that are multiples of `everyMs` since the epoch (tumbling windows among hopping ones). */
function tumbling(everyMs: number): string {
  return `(extract(epoch FROM window_end) * 1000)::int8 % ${Math.trunc(everyMs)} = 0`;
}

/** One keyset page of windows in (window_end, symbol) order. */
export function windowPageSql(q: WindowPageQuery): { sql: string; params: unknown[] } {
  const params: unknown[] = [q.size];
  const p = (v: unknown) => `$${params.push(v)}`;
  const where = ["size = $1::window_size"];
  if (q.symbols) {
    where.push(
      q.symbols.length === 1 ? `symbol = ${p(q.symbols[0])}` : `symbol = ANY(${p(q.symbols)}::text[])`,
    );
  }
  if (q.from) where.push(`window_end >= ${p(q.from)}`);
  if (q.to) where.push(`window_end < ${p(q.to)}`);
  if (q.ends) where.push(`window_end = ANY(${p(q.ends)}::timestamptz[])`);
  if (q.notAfter) where.push(`window_end <= ${p(q.notAfter)}`);
  const dir = q.order === "ASC" ? "ASC" : "DESC";
  if (q.after) {
    where.push(
      `(window_end, symbol) ${dir === "ASC" ? ">" : "<"} (to_timestamp(0) + ${p(q.after.endMs)}::int8 * interval '1 millisecond', ${p(q.after.symbol)})`,
    );
  }
  const sql = `SELECT ${WINDOW_COLUMNS} FROM window_aggregates WHERE ${where.join(" AND ")}
    ORDER BY window_end ${dir}, symbol ${dir} LIMIT ${p(q.limit)}`;
  return { sql, params };
}

/** The top `limit` rows of each window ending in [from, to) by the measure, ties by symbol. */
export function rankingsSql(q: RankingQuery): { sql: string; params: unknown[] } {
  const col = RANK_COLUMN[q.by];
  const sql = `SELECT * FROM (
      SELECT ${WINDOW_COLUMNS},
             row_number() OVER (PARTITION BY window_end ORDER BY ${col} DESC NULLS LAST, symbol) AS rank
      FROM window_aggregates
      WHERE size = $1::window_size AND window_end >= $2 AND window_end < $3 ${q.everyMs ? `AND ${tumbling(q.everyMs)}` : ""}
    ) ranked WHERE rank <= $4 ORDER BY "windowEnd", rank`;
  return { sql, params: [q.size, q.from, q.to, q.limit] };
}
