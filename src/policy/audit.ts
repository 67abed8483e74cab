import { createHash } from "node:crypto";
import { Pool, type PoolClient, type QueryResult } from "pg";
import type { Sql } from "../db/sql";
import { log } from "../log";
import { auditEntries, auditFlushSeconds } from "../metrics";

export type OperationKind = "QUERY" | "MUTATION" | "SUBSCRIPTION";
export type AccessDecision = "ALLOWED" | "PARTIAL" | "DENIED";
/** A subscription logs an entry when it starts and one when it ends; other operations one, phase null. */
export type AccessPhase = "START" | "END";

/** One operation, as the access log records it. */
export interface AccessLogInput {
  at: Date;
  principal: string | null;
  roles: string[];
  client: string | null;
  ip: string | null;
  operation: OperationKind;
  operationName: string | null;
  /** sha256 (hex) of the query text. */
  operationHash: string;
  phase: AccessPhase | null;
  allowed: string[];
  masked: string[];
  denied: string[];
  symbols: string[];
  delayed: boolean;
  decision: AccessDecision;
  errorCode: string | null;
  rowCount: number | null;
  durationMs: number | null;
}

/** A stored entry: its place in the chain and the hashes that bind it there. */
export interface AccessLogRecord extends AccessLogInput {
  /** Decimal string of `seq` (the entry's id). */
  id: string;
  seq: number;
  prevHash: string;
  hash: string;
}

/** The previous hash of the first entry. */
export const GENESIS_HASH = "0".repeat(64);

/**
 * The canonical serialization of an entry: a JSON array of its fields in this fixed order, with the
 * time as an ISO-8601 string with milliseconds and absent values as null. An array has no key-order
 * ambiguity, and JSON.stringify of strings, booleans, finite numbers and arrays is deterministic.
 */
export function canonicalEntry(seq: number, e: AccessLogInput): string {
  return JSON.stringify([
    seq,
    e.at.toISOString(),
    e.principal,
    e.roles,
    e.client,
    e.ip,
    e.operation,
    e.operationName,
    e.operationHash,
    e.phase,
    e.allowed,
    e.masked,
    e.denied,
    e.symbols,
    e.delayed,
    e.decision,
    e.errorCode,
    e.rowCount,
    e.durationMs,
  ]);
}

/** hash = sha256(prev_hash ‖ canonical entry), hex. */
export function chainHash(prevHash: string, seq: number, e: AccessLogInput): string {
  return createHash("sha256")
    .update(prevHash + canonicalEntry(seq, e))
    .digest("hex");
}

/** Thrown to every operation of a batch whose write failed: their responses must be withheld. */
export class AuditWriteError extends Error {
  override name = "AuditWriteError";
}

export interface AccessLogFilter {
  principal?: string | null;
  decision?: AccessDecision | null;
  coordinate?: string | null;
  from?: Date | null;
  to?: Date | null;
}

export interface AuditIntegrity {
  ok: boolean;
  checked: number;
  firstBrokenSeq: number | null;
}

export interface AuditLogOptions {
  /** Postgres connection string; the log is written over a connection of its own. */
  url: string;
  /** Where reads of the log (pages, verification) go: the shared pool, never the writer's connection. */
  read: Sql;
  statementTimeoutMs: number;
  /** Called with each committed entry, in chain order (e.g. to publish it on the bus). */
  onCommit?: (record: AccessLogRecord) => void;
  /** Most entries in one transaction. @default 1000 */
  maxBatch?: number;
}

interface Pending {
  entry: AccessLogInput;
  resolve(r: AccessLogRecord): void;
  reject(e: Error): void;
}

/** Any two replicas writing the log take this transaction-scoped advisory lock, so there is one chain. */
const CHAIN_LOCK = 0x7469636b; // "tick"

const COLUMNS = `seq, at, principal, roles, client, ip, operation, operation_name AS "operationName",
  operation_hash AS "operationHash", phase, allowed, masked, denied, symbols, delayed, decision,
  error_code AS "errorCode", row_count AS "rowCount", duration_ms AS "durationMs",
  prev_hash AS "prevHash", hash`;

type Row = Omit<AccessLogRecord, "seq" | "id"> & { seq: string };

const toRecord = (r: Row): AccessLogRecord => ({ ...r, seq: Number(r.seq), id: r.seq });

/**
 * The append-only, hash-chained access log, written by group commit: `append` queues an entry and
 * resolves once the transaction holding it has committed. While one batch is being written, the next
 * one gathers, so under load many operations share one transaction and one fsync; an idle server
 * writes each entry at once (no timer adds latency). The chain is extended in process, under a
 * Postgres advisory lock, from the last stored entry.
 */
export class AuditLog {
  private readonly pool: Pool;
  private queue: Pending[] = [];
  private flushing = false;
  private scheduled = false;
  private closed = false;
  private readonly maxBatch: number;

  constructor(private readonly opts: AuditLogOptions) {
    this.maxBatch = opts.maxBatch ?? 1000;
    // Its own connection: audit writes never queue behind read queries in the main pool, and one
    // connection is all a single writer needs.
    this.pool = new Pool({
      connectionString: opts.url,
      max: 1,
      application_name: "tickgraph-audit",
      connectionTimeoutMillis: opts.statementTimeoutMs,
      options: `-c statement_timeout=${opts.statementTimeoutMs}`,
    });
    this.pool.on("error", (err) => log.warn({ err }, "audit connection failed"));
  }

  /** Queues an entry; resolves when it is committed, rejects with AuditWriteError when it cannot be. */
  append(entry: AccessLogInput): Promise<AccessLogRecord> {
    if (this.closed) return Promise.reject(new AuditWriteError("the access log is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushing || this.scheduled) return;
    this.scheduled = true;
    // setImmediate: entries queued by the same turn of the event loop share the transaction.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing || !this.queue.length) return;
    this.flushing = true;
    const batch = this.queue.splice(0, this.maxBatch);
    const stop = auditFlushSeconds.startTimer();
    try {
      const records = await this.write(batch.map((p) => p.entry));
      auditEntries.inc({ outcome: "written" }, records.length);
      batch.forEach((p, i) => p.resolve(records[i]));
      for (const r of records) this.opts.onCommit?.(r);
    } catch (err) {
      auditEntries.inc({ outcome: "failed" }, batch.length);
      log.error({ err, entries: batch.length }, "access log write failed: responses withheld");
      const failure = new AuditWriteError((err as Error).message);
      for (const p of batch) p.reject(failure);
    } finally {
      stop();
      this.flushing = false;
      if (this.queue.length) this.schedule();
    }
  }

  private async write(entries: AccessLogInput[]): Promise<AccessLogRecord[]> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      // One round trip (a parameterless multi-statement query): begin, take the chain lock, read its end.
      const results = (await client.query(
        `BEGIN; SELECT pg_advisory_xact_lock(${CHAIN_LOCK});
         SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1`,
      )) as unknown as QueryResult<{ seq: string; hash: string }>[];
      const { rows } = results[2];
      let seq = rows.length ? Number(rows[0].seq) : 0;
      let prevHash = rows.length ? rows[0].hash : GENESIS_HASH;
      const records = entries.map((e) => {
        seq += 1;
        const hash = chainHash(prevHash, seq, e);
        const r: AccessLogRecord = { ...e, seq, id: String(seq), prevHash, hash };
        prevHash = hash;
        return r;
      });
      await insert(client, records);
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
    const rows = await this.opts.read.query<Row>(
      `SELECT ${COLUMNS} FROM access_log ${where.length ? "WHERE " + where.join(" AND ") : ""}
       ORDER BY seq DESC LIMIT ${p(limit)}`,
      params,
    );
    return rows.map(toRecord);
  }

  /**
   * Recomputes the chain from the first entry. The first broken seq is that of an entry whose hash no
   * longer matches its content or its predecessor's hash (altered), or the first seq missing from an
   * unbroken run starting at 1 (deleted).
   */
  async verify(): Promise<AuditIntegrity> {
    const PAGE = 5000;
    let expectedSeq = 1;
    let prevHash = GENESIS_HASH;
    let checked = 0;
    for (;;) {
      const rows = await this.opts.read.query<Row>(
        `SELECT ${COLUMNS} FROM access_log WHERE seq >= $1 ORDER BY seq LIMIT $2`,
        [expectedSeq, PAGE],
      );
      for (const row of rows) {
        const r = toRecord(row);
        if (r.seq !== expectedSeq) return { ok: false, checked, firstBrokenSeq: expectedSeq };
        if (r.prevHash !== prevHash || chainHash(prevHash, r.seq, r) !== r.hash) {
          return { ok: false, checked, firstBrokenSeq: r.seq };
        }
        checked += 1;
        expectedSeq += 1;
        prevHash = r.hash;
      }
      if (rows.length < PAGE) return { ok: true, checked, firstBrokenSeq: null };
    }
  }

  /** Stops taking entries, writes what is queued, closes the pool. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length || this.flushing) {
      if (!this.flushing) await this.flush();
      else await new Promise((r) => setTimeout(r, 2));
    }
    await this.pool.end();
  }
}

async function insert(client: PoolClient, records: AccessLogRecord[]): Promise<void> {
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
    prev_hash: r.prevHash,
    hash: r.hash,
  }));
  // One statement for the whole batch, whatever its size.
  await client.query(
    `INSERT INTO access_log
     SELECT * FROM jsonb_populate_recordset(NULL::access_log, $1::jsonb)`,
    [JSON.stringify(json)],
  );
}
