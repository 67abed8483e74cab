import type { Pool, PoolClient, QueryResult } from "pg";
import type { AccessLogEntity } from "../entities";
import type { AccessDecision } from "../core/access";
import type { Sql } from "./sql";

/** A stored entry: the entity's row, with its seq as a number and as the decimal string `id`. */
export type AccessLogRecord = Omit<AccessLogEntity, "seq"> & { seq: number; id: string };

/** One operation as the access log records it, before the chain places it. */
export type AccessLogInput = Omit<AccessLogRecord, "seq" | "id" | "prevHash" | "hash" | "keyed">;

export interface AccessLogFilter {
  principal?: string | null;
  decision?: AccessDecision | null;
  coordinate?: string | null;
  from?: Date | null;
  to?: Date | null;
}

/** Any two replicas writing the log take this transaction-scoped advisory lock, so there is one chain. */
const CHAIN_LOCK = 0x7469636b; // "tick"

const COLUMNS = `seq, at, principal, roles, client, ip, operation, operation_name AS "operationName",
  operation_hash AS "operationHash", phase, allowed, masked, denied, symbols, delayed, decision,
  error_code AS "errorCode", row_count AS "rowCount", duration_ms AS "durationMs", occurrences,
  prev_hash AS "prevHash", hash, keyed`;

type Row = Omit<AccessLogRecord, "seq" | "id"> & { seq: string };

const toRecord = (r: Row): AccessLogRecord => ({ ...r, seq: Number(r.seq), id: r.seq });

/** The newest entry of the chain: where the next one links. */
export interface ChainEnd {
  seq: number;
  hash: string;
}

/**
 * Appends to the chain in one transaction: takes the chain lock, hands `link` the chain's end (null on
 * an empty log), inserts the records it returns and commits. On a failure the transaction rolls back
 * and its connection is discarded.
 */
export async function appendToChain(
  pool: Pool,
  link: (end: ChainEnd | null) => Promise<AccessLogRecord[]>,
): Promise<AccessLogRecord[]> {
  const client = await pool.connect();
  let broken = false;
  try {
    const records = await link(await beginAppend(client));
    await insertEntries(client, records);
    await client.query("COMMIT");
    return records;
  } catch (err) {
    broken = true;
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * Opens the writer's transaction on `client`, takes the chain lock and reads the chain's end, in one
 * round trip (a parameterless multi-statement query); null on an empty log.
 */
async function beginAppend(client: PoolClient): Promise<ChainEnd | null> {
  const results = (await client.query(
    `BEGIN; SELECT pg_advisory_xact_lock(${CHAIN_LOCK});
     SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1`,
  )) as unknown as QueryResult<{ seq: string; hash: string }>[];
  const { rows } = results[2];
  return rows.length ? { seq: Number(rows[0].seq), hash: rows[0].hash } : null;
}

/** Reads of the access log (pages for stewards, runs for verification), on the shared pool. */
export class AccessLogReads {
  constructor(private readonly sql: Sql) {}

  /** A page of entries, newest first, after the cursor `afterSeq`. */
  async page(filter: AccessLogFilter, limit: number, afterSeq: number | null): Promise<AccessLogRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const p = (v: unknown) => `$${params.push(v)}`;
    if (filter.principal) where.push(`principal = ${p(filter.principal)}`);
    if (filter.decision) where.push(`decision = ${p(filter.decision)}`);
    if (filter.coordinate) {
      const c = p(filter.coordinate);
      where.push(`(${c} = ANY(allowed) OR ${c} = ANY(masked) OR ${c} = ANY(denied))`);
    }
    if (filter.from) where.push(`at >= ${p(filter.from)}`);
    if (filter.to) where.push(`at < ${p(filter.to)}`);
    if (afterSeq !== null) where.push(`seq < ${p(afterSeq)}`);
    const rows = await this.sql.query<Row>(
      `SELECT ${COLUMNS} FROM access_log ${where.length ? "WHERE " + where.join(" AND ") : ""}
       ORDER BY seq DESC LIMIT ${p(limit)}`,
      params,
    );
    return rows.map(toRecord);
  }

  /** Up to `limit` entries from `seq` on, in chain order. */
  async from(seq: number, limit: number): Promise<AccessLogRecord[]> {
    const rows = await this.sql.query<Row>(
      `SELECT ${COLUMNS} FROM access_log WHERE seq >= $1 ORDER BY seq LIMIT $2`,
      [seq, limit],
    );
    return rows.map(toRecord);
  }
}

/** Inserts a batch of chained entries in one statement, whatever its size. */
async function insertEntries(client: PoolClient, records: AccessLogRecord[]): Promise<void> {
  const json = records.map((r) => ({
    seq: r.seq,
    at: r.at.toISOString(),
    principal: r.principal,
    roles: r.roles,
    client: r.client,
    ip: r.ip,
    operation: r.operation,
    operation_name: r.operationName,
    operation_hash: r.operationHash,
    phase: r.phase,
    allowed: r.allowed,
    masked: r.masked,
    denied: r.denied,
    symbols: r.symbols,
    delayed: r.delayed,
    decision: r.decision,
    error_code: r.errorCode,
    row_count: r.rowCount,
    duration_ms: r.durationMs,
    occurrences: r.occurrences,
    prev_hash: r.prevHash,
    hash: r.hash,
    keyed: r.keyed,
  }));
  // One statement for the whole batch, whatever its size.
  await client.query(
    `INSERT INTO access_log
     SELECT * FROM jsonb_populate_recordset(NULL::access_log, $1::jsonb)`,
    [JSON.stringify(json)],
  );
}
