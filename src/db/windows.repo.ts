import type { DataSource, EntityManager } from "typeorm";
import { selectList, sqlOf, type Sql } from "../db/sql";
import { RANK_COLUMN, WINDOW_MS, WindowSize, type RankBy } from "../core/market";

/** One stored window aggregate. */
export interface WindowRow {
  symbol: string;
  size: WindowSize;
  windowStart: Date;
  windowEnd: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  mean: number;
  vwap: number | null;
  volume: number;
  tickCount: number;
  revision: number;
  final: boolean;
  /** When the row was last written, µs since the epoch, exact: the first part of its stream position. */
  updatedUs: string;
  /** The window began before the first stored trade: it covers only [coveredFrom, windowEnd). */
  partial: boolean;
  coveredFrom: Date;
}

/** A window's place in the order windows are written: (updated_at, window_end, symbol). */
export interface WindowPosition {
  updatedUs: string;
  endMs: string;
  symbol: string;
}

export interface MoverRow {
  symbol: string;
  price: number;
  referencePrice: number;
  volume: number;
}

/** Each property of a WindowRow and the column it is read from. */
const WINDOW_COLUMN: Record<keyof WindowRow, string> = {
  symbol: "symbol",
  size: "size",
  windowStart: `window_start AS "windowStart"`,
  windowEnd: `window_end AS "windowEnd"`,
  open: "open",
  high: "high",
  low: "low",
  close: "close",
  mean: "mean",
  vwap: "vwap",
  volume: "volume",
  tickCount: `tick_count AS "tickCount"`,
  revision: "revision",
  final: `coalesce(window_end <= (SELECT final_until FROM window_progress WHERE id = 1), false) AS final`,
  updatedUs: `(extract(epoch FROM updated_at) * 1000000)::int8::text AS "updatedUs"`,
  partial: `coalesce(window_start < (SELECT min(event_time) FROM quotes), false) AS partial`,
  coveredFrom: `greatest(window_start, (SELECT min(event_time) FROM quotes)) AS "coveredFrom"`,
};

const WINDOW_COLUMNS = selectList(WINDOW_COLUMN);

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
  /** The properties to read (the others are left out of the rows); all when omitted. */
  columns?: Iterable<keyof WindowRow>;
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

  /**
   * The rows of the latest window of `size` ending at or before `notAfter` (any, when null) that holds one
   * of `symbols` (any symbol, when omitted), by symbol.
   */
  latestWindow(size: WindowSize, symbols: string[] | null, notAfter: Date | null): Promise<WindowRow[]> {
    const params: unknown[] = [size];
    const p = (v: unknown) => `$${params.push(v)}`;
    const where = ["size = $1::window_size"];
    if (symbols) where.push(`symbol = ANY(${p(symbols)}::text[])`);
    const bound = notAfter ? ` AND window_end <= ${p(notAfter)}` : "";
    return this.sql.query(
      `SELECT ${WINDOW_COLUMNS} FROM window_aggregates WHERE ${where.join(" AND ")} AND window_end =
         (SELECT max(window_end) FROM window_aggregates WHERE ${where.join(" AND ")}${bound})
       ORDER BY symbol`,
      params,
    );
  }

  /**
   * Windows of `size` (of `symbols`, when given) written after `after` (from the first when null), in the
   * order they were written: (updated_at, window_end, symbol). One engine step writes its rows with one
   * updated_at, and steps run one after another: a later write sorts after every earlier one.
   */
  changes(q: WindowChangesQuery): Promise<WindowRow[]> {
    const { sql, params } = windowChangesSql(q);
    return this.sql.query(sql, params);
  }

  /** Whether any trade was stored before `at` (a previous session exists for a day starting there). */
  async tradedBefore(at: Date): Promise<boolean> {
    const rows = await this.sql.query<{ found: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM panes_10s WHERE bucket < $1) AS found`,
      [at],
    );
    return rows[0]?.found ?? false;
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

export interface WindowChangesQuery {
  size: WindowSize;
  symbols: string[] | null;
  after: WindowPosition | null;
  limit: number;
}

/** Windows written after a position, in the order written: one range of window_aggregates_changes_idx. */
export function windowChangesSql(q: WindowChangesQuery): { sql: string; params: unknown[] } {
  const params: unknown[] = [q.size];
  const p = (v: unknown) => `$${params.push(v)}`;
  const where = ["size = $1::window_size"];
  if (q.symbols) where.push(`symbol = ANY(${p(q.symbols)}::text[])`);
  if (q.after)
    where.push(
      `(updated_at, window_end, symbol) > (to_timestamp(0) + ${p(q.after.updatedUs)}::int8 * interval '1 microsecond',
        to_timestamp(0) + ${p(q.after.endMs)}::int8 * interval '1 millisecond', ${p(q.after.symbol)})`,
    );
  const sql = `SELECT ${WINDOW_COLUMNS} FROM window_aggregates WHERE ${where.join(" AND ")}
    ORDER BY updated_at, window_end, symbol LIMIT ${p(q.limit)}`;
  return { sql, params };
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
  const sql = `SELECT ${selectList(WINDOW_COLUMN, q.columns)} FROM window_aggregates WHERE ${where.join(" AND ")}
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

/** One computed window, in the column order of the upsert. */
export interface WindowValues {
  size: WindowSize;
  end: number;
  symbol: string;
  open: number;
  high: number;
  low: number;
  close: number;
  mean: number;
  vwap: number | null;
  volume: number;
  n: number;
}

/** A window an upsert inserted (revision 0) or changed (revision > 0). */
export interface ChangedWindow {
  size: WindowSize;
  windowEnd: Date;
  symbol: string;
  revision: number;
}

/** Upserts windows in one statement; RETURNING lists those inserted or changed. */
async function upsertWindows(tx: EntityManager, w: WindowValues[]): Promise<ChangedWindow[]> {
  if (!w.length) return [];
  return tx.query(
    `INSERT INTO window_aggregates AS w
       (size, window_end, symbol, window_start, open, high, low, close, mean, vwap, volume, tick_count)
     SELECT t.size::window_size, to_timestamp(t.end_ms / 1000.0), t.symbol,
            to_timestamp(t.end_ms / 1000.0) - t.len_ms * interval '1 millisecond',
            t.open, t.high, t.low, t.close, t.mean, t.vwap, t.volume, t.n
     FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::float8[], $6::float8[], $7::float8[],
                 $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::int4[])
          AS t(size, end_ms, symbol, len_ms, open, high, low, close, mean, vwap, volume, n)
     ON CONFLICT (size, window_end, symbol) DO UPDATE SET
       open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
       mean = excluded.mean, vwap = excluded.vwap, volume = excluded.volume, tick_count = excluded.tick_count,
       revision = w.revision + 1, updated_at = now()
     WHERE (w.open, w.high, w.low, w.close, w.mean, w.vwap, w.volume, w.tick_count)
           IS DISTINCT FROM (excluded.open, excluded.high, excluded.low, excluded.close,
                             excluded.mean, excluded.vwap, excluded.volume, excluded.tick_count)
     RETURNING w.size, w.window_end AS "windowEnd", w.symbol, w.revision`,
    [
      w.map((x) => x.size),
      w.map((x) => x.end),
      w.map((x) => x.symbol),
      w.map((x) => WINDOW_MS[x.size]),
      w.map((x) => x.open),
      w.map((x) => x.high),
      w.map((x) => x.low),
      w.map((x) => x.close),
      w.map((x) => x.mean),
      w.map((x) => x.vwap),
      w.map((x) => x.volume),
      w.map((x) => x.n),
    ],
  );
}

/** How far the window engine has come: windows emitted up to, and final up to (inclusive). */
export interface WindowProgress {
  emittedUntil: Date | null;
  finalUntil: Date | null;
}

/** What the window engine writes: windows and its progress, one transaction per step. */
export class WindowWrites {
  constructor(private readonly ds: DataSource) {}

  async progress(): Promise<WindowProgress> {
    const [row] = await this.ds.query<(WindowProgress | undefined)[]>(
      `SELECT emitted_until AS "emittedUntil", final_until AS "finalUntil" FROM window_progress WHERE id = 1`,
    );
    return { emittedUntil: row?.emittedUntil ?? null, finalUntil: row?.finalUntil ?? null };
  }

  /** Upserts a step's windows and records the progress it makes, together; returns the windows changed. */
  step(windows: WindowValues[], progress?: WindowProgress): Promise<ChangedWindow[]> {
    return this.ds.transaction(async (tx) => {
      const changed = await upsertWindows(tx, windows);
      if (progress) {
        await tx.query(
          `INSERT INTO window_progress (id, emitted_until, final_until) VALUES (1, $1, $2)
           ON CONFLICT (id) DO UPDATE SET emitted_until = excluded.emitted_until, final_until = excluded.final_until`,
          [progress.emittedUntil, progress.finalUntil],
        );
      }
      return changed;
    });
  }

  /** Removes the windows ending in (from, to] left without any pane (after a rebuild); returns how many. */
  async removeEmpty(from: Date, to: Date): Promise<number> {
    const removed: unknown[] = await this.ds.query(
      `DELETE FROM window_aggregates w WHERE w.window_end > $1 AND w.window_end <= $2
         AND NOT EXISTS (SELECT 1 FROM panes_10s p WHERE p.symbol = w.symbol
                         AND p.bucket >= w.window_start AND p.bucket < w.window_end)
       RETURNING 1`,
      [from, to],
    );
    return removed.length;
  }
}
