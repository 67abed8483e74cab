import type { DataSource } from "typeorm";
import { selectList, sqlOf, type Sql } from "./sql";
import { isoText } from "./text";

/** A stored trade with the best bid/ask at its time, as the read API serves it. */
export interface QuoteRow {
  id: string;
  symbol: string;
  /** ISO 8601 in UTC with milliseconds, as the API writes instants. */
  eventTime: string;
  /** Microseconds since the epoch, exact: the keyset cursor's first half. */
  eventUs: string;
  seq: string;
  price: number;
  size: number;
  bid: number | null;
  bidSize: number | null;
  ask: number | null;
  askSize: number | null;
  exchange: string | null;
  source: string;
  receivedAt: string;
}

export interface InstrumentRow {
  symbol: string;
  name: string;
  exchange: string;
  sector: string | null;
}

/** Position of a row in (event time, id) order: what a cursor encodes. */
export interface QuoteKey {
  eventUs: string;
  id: string;
}

export interface QuotePageQuery {
  symbols?: string[];
  from?: Date;
  to?: Date;
  /** Delay cutoff: only rows with event_time <= this (callers without REALTIME). */
  notAfter?: Date;
  after?: QuoteKey;
  order: "ASC" | "DESC";
  /** Rows to fetch (the caller asks for one more than the page to learn whether another follows). */
  limit: number;
  /** The properties to read (the others are left out of the rows); all when omitted. */
  columns?: Iterable<keyof QuoteRow>;
}

/**
 * Each property of a QuoteRow and the column it is read from. Instants come as the API writes them (ISO
 * 8601 text, see `isoText`), so that a page's rows are never parsed into dates and written back.
 */
const QUOTE_COLUMN: Record<keyof QuoteRow, string> = {
  id: "id",
  symbol: "symbol",
  eventTime: `${isoText("event_time")} AS "eventTime"`,
  eventUs: `(extract(epoch FROM event_time) * 1000000)::int8::text AS "eventUs"`,
  seq: "seq",
  price: "price",
  size: "size",
  bid: "bid",
  bidSize: `bid_size AS "bidSize"`,
  ask: "ask",
  askSize: `ask_size AS "askSize"`,
  exchange: "exchange",
  source: "source",
  receivedAt: `${isoText("received_at")} AS "receivedAt"`,
};

const QUOTE_COLUMNS = selectList(QUOTE_COLUMN);

const latestQuotesSql = (delayed: boolean) => `SELECT q.* FROM unnest($1::text[]) AS s(symbol)
  CROSS JOIN LATERAL (
    SELECT ${QUOTE_COLUMNS} FROM quotes
    WHERE quotes.symbol = s.symbol${delayed ? " AND event_time <= $2" : ""}
    ORDER BY event_time DESC, id DESC LIMIT 1
  ) q`;

/** $1: symbols. */
export const LATEST_QUOTES_SQL = latestQuotesSql(false);
/** $1: symbols, $2: the delay cutoff (newest event time served). */
export const LATEST_QUOTES_DELAYED_SQL = latestQuotesSql(true);

/**
 * SQL of the read API. Statements are built with only the predicates a request uses, so that each
 * shape gets the index plan it deserves (a generic `$1 IS NULL OR …` defeats that).
 */
export class MarketRepo {
  private readonly sql: Sql;

  constructor(ds: DataSource) {
    this.sql = sqlOf(ds);
  }

  /** One keyset page of quotes: (event_time, id) order, never OFFSET. */
  quotePage(q: QuotePageQuery): Promise<QuoteRow[]> {
    const { sql, params } = quotePageSql(q);
    return this.sql.query(sql, params);
  }

  /**
   * Quotes of `symbols` stored after row `afterId`, in the order stored (ids rise with each committed
   * batch: one ingest writes at a time, under the lease).
   */
  quotesAfter(symbols: string[], afterId: string | null, limit: number): Promise<QuoteRow[]> {
    const { sql, params } = quotesAfterSql(symbols, afterId, limit);
    return this.sql.query(sql, params);
  }

  /** The latest quote of each symbol (one index probe per symbol), at or before `notAfter` if given. */
  latestQuotes(symbols: readonly string[], notAfter?: Date | null): Promise<QuoteRow[]> {
    return notAfter
      ? this.sql.query(LATEST_QUOTES_DELAYED_SQL, [symbols, notAfter])
      : this.sql.query(LATEST_QUOTES_SQL, [symbols]);
  }

  instruments(filter: { search?: string; sector?: string } = {}): Promise<InstrumentRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.search) {
      params.push(`%${filter.search.replace(/[\\%_]/g, (c) => "\\" + c)}%`);
      where.push(`(symbol ILIKE $${params.length} OR name ILIKE $${params.length})`);
    }
    if (filter.sector) {
      params.push(filter.sector);
      where.push(`sector = $${params.length}`);
    }
    return this.sql.query(
      `SELECT symbol, name, exchange, sector FROM instruments
       ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY symbol`,
      params,
    );
  }

  instrumentsBySymbol(symbols: readonly string[]): Promise<InstrumentRow[]> {
    return this.sql.query(
      "SELECT symbol, name, exchange, sector FROM instruments WHERE symbol = ANY($1::text[])",
      [symbols],
    );
  }
}

/** Quotes of `symbols` stored after row `afterId` (from the first when null), in id order: the order stored. */
export function quotesAfterSql(symbols: string[], afterId: string | null, limit: number) {
  const params: unknown[] = [symbols, limit];
  const after = afterId === null ? "" : ` AND id > $${params.push(afterId)}::int8`;
  return {
    sql: `SELECT ${QUOTE_COLUMNS} FROM quotes WHERE symbol = ANY($1::text[])${after} ORDER BY id LIMIT $2`,
    params,
  };
}

export function quotePageSql(q: QuotePageQuery): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  if (q.symbols) {
    where.push(
      q.symbols.length === 1 ? `symbol = ${p(q.symbols[0])}` : `symbol = ANY(${p(q.symbols)}::text[])`,
    );
  }
  if (q.from) where.push(`event_time >= ${p(q.from)}`);
  if (q.to) where.push(`event_time < ${p(q.to)}`);
  if (q.notAfter) where.push(`event_time <= ${p(q.notAfter)}`);
  const dir = q.order === "ASC" ? "ASC" : "DESC";
  if (q.after) {
    const cmp = dir === "ASC" ? ">" : "<";
    where.push(
      `(event_time, id) ${cmp} (to_timestamp(0) + ${p(q.after.eventUs)}::int8 * interval '1 microsecond', ${p(q.after.id)}::int8)`,
    );
  }
  const sql = `SELECT ${selectList(QUOTE_COLUMN, q.columns)} FROM quotes
    ${where.length ? "WHERE " + where.join(" AND ") : ""}
    ORDER BY event_time ${dir}, id ${dir} LIMIT ${p(q.limit)}`;
  return { sql, params };
}
