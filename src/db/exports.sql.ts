import { Readable } from "node:stream";
import { Pool, type PoolClient } from "pg";
import { to as copyTo } from "pg-copy-streams";
import { dbQueries } from "../metrics";
import { isoText } from "./text";

/** What can be exported: the rows of `quotes`, `windowAggregates` and `accessLog`. */
export type Dataset = "quotes" | "window-aggregates" | "access-log";

export type ExportFormat = "csv" | "ndjson";

/** How a column's value is written: as GraphQL serializes the field it stands for. */
type Kind = "text" | "int8" | "number" | "bool" | "time" | "array";

/** One exportable column: the GraphQL field it stands for (its name) and its SQL. */
interface ColumnSql {
  sql: string;
  kind: Kind;
}

const col = (sql: string, kind: Kind = "text"): ColumnSql => ({ sql, kind });

/** Every column of each dataset, in export order, named after the GraphQL field it matches. */
export const EXPORT_COLUMNS: Record<Dataset, Record<string, ColumnSql>> = {
  quotes: {
    id: col("id", "int8"),
    symbol: col("symbol"),
    eventTime: col("event_time", "time"),
    seq: col("seq", "int8"),
    price: col("price", "number"),
    size: col("size", "number"),
    bid: col("bid", "number"),
    bidSize: col("bid_size", "number"),
    ask: col("ask", "number"),
    askSize: col("ask_size", "number"),
    exchange: col("exchange"),
    delayed: col("$delayed", "bool"),
    source: col("source"),
    receivedAt: col("received_at", "time"),
  },
  "window-aggregates": {
    symbol: col("symbol"),
    size: col("size::text"),
    windowStart: col("window_start", "time"),
    windowEnd: col("window_end", "time"),
    open: col("open", "number"),
    high: col("high", "number"),
    low: col("low", "number"),
    close: col("close", "number"),
    mean: col("mean", "number"),
    vwap: col("vwap", "number"),
    volume: col("volume", "number"),
    tickCount: col("tick_count", "number"),
    revision: col("revision", "number"),
    // As the read API derives it: final once the engine's final_until has passed the window's end.
    final: col(
      "coalesce(window_end <= (SELECT final_until FROM window_progress WHERE id = 1), false)",
      "bool",
    ),
    delayed: col("$delayed", "bool"),
  },
  "access-log": {
    id: col("seq", "int8"),
    seq: col("seq", "number"),
    at: col("at", "time"),
    principal: col("principal"),
    roles: col("roles", "array"),
    client: col("client"),
    ip: col("ip"),
    operation: col("operation"),
    operationName: col("operation_name"),
    operationHash: col("operation_hash"),
    phase: col("phase"),
    allowed: col("allowed", "array"),
    masked: col("masked", "array"),
    denied: col("denied", "array"),
    symbols: col("symbols", "array"),
    delayed: col("delayed", "bool"),
    decision: col("decision"),
    errorCode: col("error_code"),
    rowCount: col("row_count", "number"),
    durationMs: col("duration_ms", "number"),
    occurrences: col("occurrences", "number"),
    keyed: col("keyed", "bool"),
    prevHash: col("prev_hash"),
    hash: col("hash"),
  },
};

/** A column's value for a CSV cell (text, null as an empty cell) or a JSON value. */
function valueSql(c: ColumnSql, format: ExportFormat, delayed: boolean): string {
  const sql = c.sql === "$delayed" ? String(delayed) : c.sql;
  switch (c.kind) {
    case "time":
      return isoText(sql);
    case "int8":
      return `${sql}::text`;
    case "bool":
      return format === "csv" ? `CASE WHEN ${sql} THEN 'true' WHEN NOT ${sql} THEN 'false' END` : sql;
    case "array":
      return format === "csv" ? `array_to_json(${sql})::text` : sql;
    default:
      return sql;
  }
}

export interface ExportQuery {
  dataset: Dataset;
  /** Columns in order; a masked one is written empty (null). */
  columns: { name: string; masked: boolean }[];
  format: ExportFormat;
  order: "ASC" | "DESC";
  symbols?: string[];
  /** Event time (quotes), window end (windows) or entry time (access log) in [from, to). */
  from?: Date;
  to?: Date;
  /** The delay cutoff: only rows at or before it; the rows are marked delayed. */
  notAfter?: Date;
  /** Windows of this size (window-aggregates only). */
  size?: string;
  /** Access-log filters. */
  principal?: string;
  decision?: string;
  coordinate?: string;
}

/** The table, predicates and order of an export, with their parameters. */
function selection(q: ExportQuery): { from: string; where: string; orderBy: string; params: unknown[] } {
  const params: unknown[] = [];
  const p = (v: unknown) => `$${params.push(v)}`;
  const where: string[] = [];
  const dir = q.order === "DESC" ? "DESC" : "ASC";
  const symbols = () => {
    if (!q.symbols) return;
    where.push(
      q.symbols.length === 1 ? `symbol = ${p(q.symbols[0])}` : `symbol = ANY(${p(q.symbols)}::text[])`,
    );
  };
  const range = (column: string) => {
    if (q.from) where.push(`${column} >= ${p(q.from)}`);
    if (q.to) where.push(`${column} < ${p(q.to)}`);
    if (q.notAfter) where.push(`${column} <= ${p(q.notAfter)}`);
  };
  let table: string;
  let orderBy: string;
  switch (q.dataset) {
    case "quotes":
      table = "quotes";
      symbols();
      range("event_time");
      // The keyset order of the quotes pages, so that an export and the pages list rows alike.
      orderBy = `t.event_time ${dir}, t.id ${dir}`;
      break;
    case "window-aggregates":
      table = "window_aggregates";
      where.push(`size = ${p(q.size)}::window_size`);
      symbols();
      range("window_end");
      orderBy = `t.window_end ${dir}, t.symbol ${dir}`;
      break;
    case "access-log":
      table = "access_log";
      if (q.principal) where.push(`principal = ${p(q.principal)}`);
      if (q.decision) where.push(`decision = ${p(q.decision)}`);
      if (q.coordinate) {
        const c = p(q.coordinate);
        where.push(`(${c} = ANY(allowed) OR ${c} = ANY(masked) OR ${c} = ANY(denied))`);
      }
      range("at");
      orderBy = `t.seq ${dir}`;
      break;
  }
  // Ordered by the table's columns (`t.`), never by an output column of the same name cast to text.
  return { from: `${table} t`, where: where.length ? `WHERE ${where.join(" AND ")}` : "", orderBy, params };
}

/** The COPY statement streaming an export, and its parameters (inlined: COPY takes none). */
export function exportSql(q: ExportQuery): { count: string; copy: string; params: unknown[] } {
  const { from, where, orderBy, params } = selection(q);
  const spec = EXPORT_COLUMNS[q.dataset];
  const delayed = q.notAfter !== undefined;
  const values = q.columns.map(({ name, masked }) => {
    const c = spec[name];
    return { name, sql: masked ? "NULL" : valueSql(c, q.format, delayed) };
  });
  const select =
    q.format === "csv"
      ? values.map((v) => `${v.sql} AS "${v.name}"`).join(", ")
      : `json_build_object(${values.map((v) => `'${v.name}', ${v.sql}`).join(", ")})::text`;
  const body = `SELECT ${select} FROM ${from} ${where} ORDER BY ${orderBy}`;
  // A JSON line never holds a raw control character (JSON escapes them), so with \x01 as the quote
  // and \x02 as the delimiter CSV mode writes each line exactly as Postgres built it.
  const options =
    q.format === "csv" ? "FORMAT csv, HEADER true" : "FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02'";
  const count =
    q.dataset === "access-log"
      ? `SELECT NULL AS symbol, count(*)::int8 AS n FROM ${from} ${where}`
      : `SELECT symbol, count(*)::int8 AS n FROM ${from} ${where} GROUP BY symbol`;
  return { count, copy: `COPY (${inline(body, params)}) TO STDOUT WITH (${options})`, params };
}

/** COPY takes no parameters: each one is written as a quoted literal, typed like its value. */
function inline(sql: string, params: unknown[]): string {
  return sql.replace(/\$(\d+)/g, (_m, n: string) => literal(params[Number(n) - 1]));
}

function literal(v: unknown): string {
  const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
  if (v instanceof Date) return `${quote(v.toISOString())}::timestamptz`;
  if (Array.isArray(v)) return `ARRAY[${v.map((s) => quote(String(s))).join(", ")}]::text[]`;
  return quote(String(v));
}

/** A started export: how many rows it holds (counted in its snapshot) and by which symbols. */
export interface OpenExport {
  rows: number;
  symbols: string[];
  /** Streams the rows (header first for CSV) from the snapshot they were counted in, then releases. */
  stream(): Readable;
  /** Releases the connection without streaming (the export was refused after counting). */
  cancel(): Promise<void>;
}

/**
 * Exports stream straight from Postgres (COPY … TO STDOUT), so a range of any size passes through in
 * constant memory, at the pace the client reads (backpressure pauses the COPY). They run on a pool of
 * their own, so that long exports never take the connections queries need; its size bounds how many run
 * at once.
 */
export class ExportsRepo {
  private readonly pool: Pool;

  constructor(url: string, maxConnections: number) {
    this.pool = new Pool({
      connectionString: url,
      max: maxConnections,
      application_name: "tickgraph-export",
      // An export lasts as long as its client reads: no statement timeout, in one read-only snapshot.
      // Parameters are inlined into COPY as literals: quotes doubled, backslashes plain (the standard).
      options: "-c statement_timeout=0 -c TimeZone=UTC -c standard_conforming_strings=on",
    });
    this.pool.on("error", () => {}); // an idle connection that dies is replaced on the next export
  }

  /** Counts what `q` selects in a snapshot and holds it for `stream()`; throws on a database error. */
  async open(q: ExportQuery): Promise<OpenExport> {
    const { count, copy, params } = exportSql(q);
    const client = await this.pool.connect();
    let released = false;
    const release = (err?: Error) => {
      if (released) return;
      released = true;
      // A connection whose COPY was cut off is dropped rather than reused mid-protocol.
      client.release(err ?? false);
    };
    try {
      dbQueries.inc();
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      dbQueries.inc();
      const counted = await client.query<{ symbol: string | null; n: string }>(count, params);
      return {
        rows: counted.rows.reduce((sum, r) => sum + Number(r.n), 0),
        symbols: counted.rows.flatMap((r) => (r.symbol === null ? [] : [r.symbol])),
        stream: () => this.copy(client, copy, release),
        cancel: async () => {
          await client.query("ROLLBACK").catch(() => {});
          release();
        },
      };
    } catch (err) {
      release(err as Error);
      throw err;
    }
  }

  private copy(client: PoolClient, sql: string, release: (err?: Error) => void): Readable {
    dbQueries.inc();
    const stream = client.query(copyTo(sql));
    stream.once("end", () => {
      client.query("COMMIT").then(
        () => release(),
        (err: Error) => release(err),
      );
    });
    // An error, or the reader going away before the end (`close` without `end`), drops the connection:
    // Postgres stops the COPY when it finds its client gone.
    stream.once("error", (err) => release(err));
    stream.once("close", () => {
      if (!stream.readableEnded) release(new Error("export stream closed before its end"));
    });
    return stream;
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
