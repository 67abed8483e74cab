import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { Pool } from "pg";
import {
  AccessLogReads,
  appendToChain,
  type AccessLogFilter,
  type AccessLogInput,
  type AccessLogRecord,
} from "../db/access-log.repo";
import type { Sql } from "../db/sql";
import { storableText } from "../db/text";
import { log } from "../log";
import { auditCheckpointSeq, auditEntries, auditFlushSeconds, auditTailMissing } from "../metrics";

export type { AccessLogFilter, AccessLogInput, AccessLogRecord } from "../db/access-log.repo";
export type { AccessDecision, AccessPhase, OperationKind } from "../core/access";

/** The previous hash of the first entry. */
export const GENESIS_HASH = "0".repeat(64);

/**
 * The canonical serialization of an entry: a JSON array of its fields in this fixed order, with the
 * time as an ISO-8601 string with milliseconds and absent values as null. An array has no key-order
 * ambiguity, and JSON.stringify of strings, booleans, finite numbers and arrays is deterministic.
 * Keyed entries also bind `occurrences`, which entries written before the key did not have.
 */
export function canonicalEntry(seq: number, e: AccessLogInput, keyed: boolean): string {
  const fields: unknown[] = [
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
  ];
  if (keyed) fields.push(e.occurrences);
  return JSON.stringify(fields);
}

/**
 * The access log's secret: it keys the chain (hash = HMAC-SHA256(key, prev_hash ‖ canonical entry)) and
 * signs head checkpoints. Kept outside the database, so that whoever can rewrite the table cannot
 * recompute the chain or forge a checkpoint.
 */
export class AuditKey {
  constructor(private readonly secret: Buffer) {
    if (secret.length < 32) throw new Error("the audit key must be at least 32 bytes");
  }

  /** The entry's hash: keyed (HMAC) for entries written under a key; sha256 for those written before. */
  chain(prevHash: string, seq: number, e: AccessLogInput, keyed = true): string {
    const text = prevHash + canonicalEntry(seq, e, keyed);
    return (keyed ? createHmac("sha256", this.secret) : createHash("sha256")).update(text).digest("hex");
  }

  /** The signature of a head checkpoint: what it says, bound to the key. */
  sign(c: Omit<AuditCheckpoint, "sig" | "at">): string {
    return createHmac("sha256", this.secret)
      .update(`tickgraph-audit-checkpoint\n${c.seq}\n${c.hash}\n${c.cutFrom ?? ""}`)
      .digest("hex");
  }

  verifies(c: AuditCheckpoint): boolean {
    const want = Buffer.from(this.sign(c), "hex");
    const got = Buffer.from(typeof c.sig === "string" ? c.sig : "", "hex");
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

/**
 * A signed record, kept outside the table, that entry `seq` existed with hash `hash` (the newest entry
 * written), and, once a writer found entries it had written gone from the table, from which seq on.
 */
export interface AuditCheckpoint {
  seq: number;
  hash: string;
  cutFrom: number | null;
  /** When it was taken (ISO 8601). */
  at: string;
  sig: string;
}

/** What is known of the log from outside it: the newest entry written, and the first seq found cut. */
type Evidence = Pick<AuditCheckpoint, "seq" | "hash" | "cutFrom">;

/** The stronger of two pieces of evidence: the newer head, the earlier cut. */
function merged(a: Evidence | null, b: Evidence | null): Evidence | null {
  if (!a || !b) return a ?? b;
  const head = b.seq > a.seq ? b : a;
  const cuts = [a.cutFrom, b.cutFrom].filter((x): x is number => x !== null);
  return { seq: head.seq, hash: head.hash, cutFrom: cuts.length ? Math.min(...cuts) : null };
}

/** Thrown to every operation of a batch whose write failed: their responses must be withheld. */
export class AuditWriteError extends Error {
  override name = "AuditWriteError";
}

export interface AuditIntegrity {
  ok: boolean;
  checked: number;
  firstBrokenSeq: number | null;
  /** The signed head checkpoint the log was held against (null when none was taken yet). */
  checkpointSeq: number | null;
  /** What is wrong at firstBrokenSeq, in words; null when ok. */
  problem: string | null;
}

export interface AuditLogOptions {
  /** Postgres connection string; the log is written over a connection of its own. */
  url: string;
  /** Keys the chain and signs checkpoints. */
  key: AuditKey;
  /** Where the latest signed head checkpoint is kept (outside the database); none when omitted. */
  checkpointFile?: string;
  /** How often a moved head is checkpointed, ms (and always at close). @default 10000 */
  checkpointMs?: number;
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

/** Postgres errors a single entry's content can cause (data exceptions, constraints, limits). */
const ENTRY_ERROR = /^(22|23|54)/;
const MAX_NAME = 200;
const MAX_SYMBOL = 64;

/** An entry as it can be stored: client bytes Postgres refuses escaped, client strings bounded. */
function storableEntry(e: AccessLogInput): AccessLogInput {
  const text = (v: string | null, max = MAX_NAME) => (v === null ? null : storableText(v.slice(0, max)));
  return {
    ...e,
    principal: text(e.principal),
    client: text(e.client),
    ip: text(e.ip),
    operationName: text(e.operationName),
    symbols: e.symbols.map((x) => text(x, MAX_SYMBOL)!),
  };
}

/**
 * The append-only, hash-chained access log, written by group commit: `append` queues an entry and
 * resolves once the transaction holding it has committed. While one batch is being written, the next
 * one gathers, so under load many operations share one transaction and one fsync; an idle server
 * writes each entry at once (no timer adds latency). The chain is extended in process, under a
 * Postgres advisory lock, from the last stored entry, keyed by the audit key. An entry Postgres refuses
 * fails alone: the batch is split until the others are written. The head this process wrote last is
 * checkpointed, signed, outside the table, so that a cut tail or a rewritten chain is found.
 */
export class AuditLog {
  private readonly pool: Pool;
  private queue: Pending[] = [];
  private flushing = false;
  private scheduled = false;
  private closed = false;
  private readonly maxBatch: number;
  /** The evidence this writer holds (from the checkpoint file and its own writes), and its last copy saved. */
  private known: Evidence | null = null;
  private saved: string | null = null;
  private readonly loaded: Promise<void>;
  private readonly checkpointTimer: NodeJS.Timeout | undefined;
  private readonly reads: AccessLogReads;
  private checkpointing: Promise<void> = Promise.resolve();

  constructor(private readonly opts: AuditLogOptions) {
    this.maxBatch = opts.maxBatch ?? 1000;
    this.reads = new AccessLogReads(opts.read);
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
    // A restarted process resumes from what its predecessors signed: a tail cut while it was down
    // is found by its first write.
    this.loaded = this.readCheckpoint().then((c) => {
      this.known = merged(this.known, c);
      this.saved = c ? this.opts.key.sign(c) : null;
    });
    if (opts.checkpointFile) {
      this.checkpointTimer = setInterval(() => void this.checkpoint(), opts.checkpointMs ?? 10_000);
      this.checkpointTimer.unref();
    }
  }

  /** Queues an entry; resolves when it is committed, rejects with AuditWriteError when it cannot be. */
  append(entry: AccessLogInput): Promise<AccessLogRecord> {
    if (this.closed) return Promise.reject(new AuditWriteError("the access log is closed"));
    return new Promise((resolve, reject) => {
      this.queue.push({ entry: storableEntry(entry), resolve, reject });
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
      await this.writeAll(batch);
    } finally {
      stop();
      this.flushing = false;
      if (this.queue.length) this.schedule();
    }
  }

  /**
   * Writes a batch in one transaction. When Postgres refuses it for what an entry holds (a data error),
   * the batch is split in halves and each written on its own, down to the entries at fault: those fail
   * (their responses are withheld), the others are written.
   */
  private async writeAll(batch: Pending[]): Promise<void> {
    try {
      const records = await this.write(batch.map((p) => p.entry));
      auditEntries.inc({ outcome: "written" }, records.length);
      batch.forEach((p, i) => p.resolve(records[i]));
      for (const r of records) this.opts.onCommit?.(r);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (batch.length > 1 && code && ENTRY_ERROR.test(code)) {
        const half = batch.length >> 1;
        await this.writeAll(batch.slice(0, half));
        await this.writeAll(batch.slice(half));
        return;
      }
      auditEntries.inc({ outcome: "failed" }, batch.length);
      log.error({ err, entries: batch.length }, "access log write failed: responses withheld");
      const failure = new AuditWriteError((err as Error).message);
      for (const p of batch) p.reject(failure);
    }
  }

  private async write(entries: AccessLogInput[]): Promise<AccessLogRecord[]> {
    await this.loaded;
    const records = await appendToChain(this.pool, async (end) => {
      let seq = end?.seq ?? 0;
      let prevHash = end?.hash ?? GENESIS_HASH;
      if (this.known && seq < this.known.seq) {
        // Entries already written are gone: only someone bypassing the table's trigger does that. The
        // evidence is signed and saved before anything else is written over the gap.
        auditTailMissing.inc();
        log.error(
          { lastStored: seq, lastWritten: this.known.seq },
          "access log: written entries are missing from the table",
        );
        this.known = merged(this.known, { ...this.known, cutFrom: seq + 1 });
        await this.checkpoint();
      }
      return entries.map((e) => {
        seq += 1;
        const hash = this.opts.key.chain(prevHash, seq, e);
        const r: AccessLogRecord = { ...e, seq, id: String(seq), prevHash, hash, keyed: true };
        prevHash = hash;
        return r;
      });
    });
    const last = records[records.length - 1];
    this.known = merged(this.known, { seq: last.seq, hash: last.hash, cutFrom: null });
    return records;
  }

  /**
   * Signs what this writer knows (the newest entry written, any cut found) and keeps it outside the
   * table: in the checkpoint file (replaced atomically), in the log, and as a metric. Nothing is
   * written when nothing changed.
   */
  checkpoint(): Promise<void> {
    this.checkpointing = this.checkpointing.then(async () => {
      if (!this.known) return;
      const sig = this.opts.key.sign(this.known);
      if (sig === this.saved) return;
      const c: AuditCheckpoint = { ...this.known, at: new Date().toISOString(), sig };
      this.saved = sig;
      auditCheckpointSeq.set(c.seq);
      log.info({ auditCheckpoint: c }, "access log head checkpoint");
      const file = this.opts.checkpointFile;
      if (!file) return;
      try {
        await writeFile(`${file}.tmp`, JSON.stringify(c) + "\n", { mode: 0o600 });
        await rename(`${file}.tmp`, file);
      } catch (err) {
        log.error({ err, file }, "access log checkpoint not written");
      }
    });
    return this.checkpointing;
  }

  /** The checkpoint file's content when its signature holds (another replica may share the file). */
  private async readCheckpoint(): Promise<Evidence | null> {
    const file = this.opts.checkpointFile;
    if (!file) return null;
    let c: AuditCheckpoint;
    try {
      c = JSON.parse(await readFile(file, "utf8")) as AuditCheckpoint;
    } catch {
      return null; // none yet
    }
    if (this.opts.key.verifies(c)) return { seq: c.seq, hash: c.hash, cutFrom: c.cutFrom ?? null };
    log.error({ file }, "access log checkpoint file ignored: its signature does not hold");
    return null;
  }

  /** A page of entries, newest first, after the cursor `afterSeq`. */
  page(filter: AccessLogFilter, limit: number, afterSeq: number | null): Promise<AccessLogRecord[]> {
    return this.reads.page(filter, limit, afterSeq);
  }

  /**
   * Recomputes the chain from the first entry, then holds it against what is signed outside the table.
   * The first broken seq is that of an entry whose hash no longer matches its content or its
   * predecessor's hash (altered), the first seq missing from an unbroken run starting at 1 (deleted),
   * an entry unkeyed after keyed ones (re-chained without the key), an entry that differs from its
   * signed checkpoint, the first seq a writer found removed, or the first seq after the stored end when
   * a checkpoint shows the log went further (its tail cut, or the table truncated).
   */
  async verify(): Promise<AuditIntegrity> {
    await this.loaded;
    const known = merged(this.known, await this.readCheckpoint());
    const checkpointSeq = known?.seq ?? null;
    const walked = await this.walk(known);
    const found: { seq: number; problem: string }[] = [];
    if (walked.broken) found.push(walked.broken);
    else if (known && known.seq >= walked.nextSeq) {
      found.push({
        seq: walked.nextSeq,
        problem: `entries from ${walked.nextSeq} are missing: a signed checkpoint shows entry ${known.seq}`,
      });
    }
    if (known?.cutFrom != null)
      found.push({
        seq: known.cutFrom,
        problem: `entries from ${known.cutFrom} were removed from the table`,
      });
    const broken = found.sort((a, b) => a.seq - b.seq)[0];
    const { checked } = walked;
    return broken
      ? { ok: false, checked, firstBrokenSeq: broken.seq, checkpointSeq, problem: broken.problem }
      : { ok: true, checked, firstBrokenSeq: null, checkpointSeq, problem: null };
  }

  /** Walks the chain from seq 1: entries checked before the first break, and that break. */
  private async walk(known: Evidence | null): Promise<{
    checked: number;
    nextSeq: number;
    broken: { seq: number; problem: string } | null;
  }> {
    const PAGE = 5000;
    let nextSeq = 1;
    let prevHash = GENESIS_HASH;
    let checked = 0;
    let keyedSeen = false;
    const stop = (seq: number, problem: string) => ({ checked, nextSeq, broken: { seq, problem } });
    for (;;) {
      const rows = await this.reads.from(nextSeq, PAGE);
      for (const r of rows) {
        if (r.seq !== nextSeq) return stop(nextSeq, `entry ${nextSeq} is missing`);
        if (keyedSeen && !r.keyed) return stop(r.seq, `entry ${r.seq} is not keyed, after keyed entries`);
        if (r.prevHash !== prevHash || this.opts.key.chain(prevHash, r.seq, r, r.keyed) !== r.hash)
          return stop(r.seq, `entry ${r.seq} does not match its hash`);
        if (known && r.seq === known.seq && r.hash !== known.hash)
          return stop(r.seq, `entry ${r.seq} differs from its signed checkpoint`);
        keyedSeen ||= r.keyed;
        checked += 1;
        nextSeq += 1;
        prevHash = r.hash;
      }
      if (rows.length < PAGE) return { checked, nextSeq, broken: null };
    }
  }

  /** Stops taking entries, writes what is queued and its checkpoint, closes the pool. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.checkpointTimer);
    while (this.queue.length || this.flushing) {
      if (!this.flushing) await this.flush();
      else await new Promise((r) => setTimeout(r, 2));
    }
    await this.checkpoint();
    await this.pool.end();
  }
}
