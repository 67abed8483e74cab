import { finished } from "node:stream/promises";
import type { PoolClient } from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { DataSource } from "typeorm";
import { allCommitted, committedOf, type CommittedTrades, type TradeColumns } from "../core/trades";
import { CheckpointsRepo } from "./checkpoints.repo";
import { mergePanesSql, PaneSums, UPSERT_PANES_SQL } from "./panes.repo";

/** One transaction's worth of a batch, column by column (row k is element k of each array). */
export interface PartRows extends TradeColumns {
  /** Event time in microseconds since the epoch (what panes are cut by). */
  timeUs: number[];
  /** Quarantined inputs: receive time (epoch ms), the market's time then, text, reason, detail. */
  qReceived: number[];
  qMarket: (number | null)[];
  qRaw: string[];
  qReason: string[];
  qDetail: string[];
  /** Row numbers of the trades in key order (symbol, then seq). */
  keyOrder(): number[];
}

/** The checkpoint a part commits with: what all its rows, and all before them, make true. */
export interface PartCheckpoint {
  /** Symbol → highest id below which all are handled; only the part's symbols that moved. */
  lastIds: Record<string, number>;
  watermarkMs: number | null;
}

/** What a part's trades left in the database. */
export interface StoredPart {
  /** New rows (the rest lost on the unique key: duplicates). */
  inserted: number;
  /** Distinct pane starts (epoch ms) that got new trades, ascending. */
  buckets: number[];
  /** The new rows with their ids, when they were asked for. */
  committed: CommittedTrades[];
}

/**
 * COMMIT failed, most often because the connection broke while it ran: the transaction may or may not
 * have been applied. `IngestWrites.committed` with the same token tells, once the database answers
 * again; `stored` is what the part wrote if it was.
 */
export class CommitInDoubtError extends Error {
  override name = "CommitInDoubtError";
  constructor(
    readonly stored: StoredPart,
    readonly error: unknown,
  ) {
    super(`COMMIT of an ingest batch failed, outcome unknown: ${(error as Error)?.message ?? String(error)}`);
  }
}

/** Another writer claimed the stream after this one: this one must write nothing more. */
export class StreamTakenError extends Error {
  override name = "StreamTakenError";
  constructor(
    readonly stream: string,
    readonly epoch: string,
  ) {
    super(`ingest stream "${stream}" was claimed by another writer after epoch ${epoch}`);
  }
}

export interface IngestWritesOptions {
  /** Checkpoint key (`ingest_checkpoints.stream`). */
  stream: string;
  /** The writer's claim on the stream (CheckpointsRepo.claim): parts commit only while it holds. */
  epoch: string;
  /** Wait for each commit to reach disk (see BatchWriterOptions.durableCommits). */
  durable: boolean;
}

/**
 * Names one transaction of a part: `part` is the part's number within its batch, `token` unique to the
 * transaction (the writer's epoch and a count), stored on the checkpoint row as it commits.
 */
export interface CommitToken {
  part: number;
  token: string;
}

const COPY_ESCAPES: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" };
/** A text value in COPY's text format. */
const copyText = (v: string): string =>
  /[\\\t\n\r]/.test(v) ? v.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]) : v;
const copyValue = (v: number | null): string => (v === null ? "\\N" : String(v));

const COPY_COLUMNS =
  "symbol, event_time, seq, price, size, bid, bid_size, ask, ask_size, exchange, source, received_at";

/** The trades of a part as COPY text, in key order, with their ids when given. */
function copyRows(b: PartRows, ids: string[] | null): string {
  const lines: string[] = [];
  let receivedMs = NaN;
  let received = "";
  for (const k of b.keyOrder()) {
    if (b.received[k] !== receivedMs) {
      receivedMs = b.received[k];
      received = new Date(receivedMs).toISOString();
    }
    lines.push(
      `${ids ? ids[k] + "\t" : ""}${copyText(b.symbol[k])}\t${b.time[k]}\t${b.seq[k]}\t${b.price[k]}\t${b.size[k]}\t` +
        `${copyValue(b.bid[k])}\t${copyValue(b.bidSize[k])}\t${copyValue(b.ask[k])}\t${copyValue(b.askSize[k])}\t` +
        `${copyText(b.exchange[k])}\t${b.source[k]}\t${received}\n`,
    );
  }
  return lines.join("");
}

const ALLOCATE_IDS = `SELECT array_agg(nextval('quotes_id_seq'))::text[] AS ids FROM generate_series(1, $1)`;

// The slow way for trades, with their panes in one statement: only rows that won the unique key reach
// the panes, so a duplicate is never counted twice. Rows go in key order: neighbouring index entries
// land on the same pages (a fifth faster than feed order). Returns what the commit listeners need.
const insertTrades = (withTrades: boolean) => `
  WITH ins AS (
    INSERT INTO quotes (symbol, event_time, seq, price, size, bid, bid_size, ask, ask_size, exchange,
                        source, received_at)
    SELECT s, t::timestamptz, q, p, z, b, bz, a, az, x, src, to_timestamp(r / 1000.0)
    FROM unnest($1::text[], $2::text[], $3::int8[], $4::float8[], $5::int4[], $6::float8[], $7::int4[],
                $8::float8[], $9::int4[], $10::text[], $11::text[], $12::float8[])
         AS u(s, t, q, p, z, b, bz, a, az, x, src, r)
    ORDER BY s, q
    ON CONFLICT (symbol, seq) DO NOTHING
    RETURNING id, symbol, event_time, seq, price, size
  ), merged AS (${mergePanesSql("ins")})
  SELECT count(*)::int AS inserted, ${withTrades ? "array_agg(id) AS ids, array_agg(symbol) AS symbols, array_agg(seq) AS seqs," : ""}
         coalesce(array_agg(DISTINCT (extract(epoch FROM date_bin('10 seconds', event_time, timestamptz 'epoch'))
                                      * 1000)::int8), '{}') AS buckets
  FROM ins`;
const INSERT_TRADES = insertTrades(true);
const INSERT_TRADES_LEAN = insertTrades(false);

const INSERT_QUARANTINE = `
  INSERT INTO quarantine (received_at, raw, reason, detail, market_at)
  SELECT to_timestamp(r / 1000.0), w, n, d, to_timestamp(m / 1000.0)
  FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::float8[]) AS u(r, w, n, d, m)`;

// The part's checkpoint, written only while the row carries this writer's epoch: the fence. It comes last
// in the transaction, so that parts of one batch wait for each other only here; a writer claiming the
// stream meanwhile either waits for this row lock (and then reads this commit) or makes this match nothing.
const UPDATE_CHECKPOINT = `
  UPDATE ingest_checkpoints AS c SET
    last_ids = c.last_ids || $2::jsonb,
    watermark = greatest(c.watermark, $3::timestamptz),
    updated_at = now(),
    commits = c.commits || jsonb_build_object($5::text, $6::text)
  WHERE c.stream = $1 AND c.epoch = $4::int8`;

const UNIQUE_VIOLATION = "23505";

/**
 * The ingest's statements: one part of a batch in one transaction, holding its trades, their panes, its
 * quarantine rows and its checkpoint, so that a crash never leaves them out of step.
 */
export class IngestWrites {
  constructor(
    private readonly ds: DataSource,
    private readonly opts: IngestWritesOptions,
  ) {}

  /**
   * Commits one part. Its trades go in by COPY, their panes merged from sums taken here: the fast way,
   * when none of them is stored yet. A part that `mayRepeat` stored trades (a backfill), or whose COPY
   * meets the unique key, goes in by `INSERT … ON CONFLICT DO NOTHING` instead, its panes merged from
   * what the insert returns, so that a repeat is never counted twice. `wantTrades`: return the new rows
   * with their ids. Throws StreamTakenError when another writer holds the stream.
   */
  async commit(
    part: PartRows,
    cp: PartCheckpoint,
    how: { mayRepeat: boolean; wantTrades: boolean; tx: CommitToken },
  ): Promise<StoredPart> {
    const wantTrades = how.wantTrades && part.symbol.length > 0;
    const qr = this.ds.createQueryRunner();
    const client = (await qr.connect()) as PoolClient;
    try {
      if (!how.mayRepeat) {
        try {
          return await this.transaction(client, part, cp, how.tx, () =>
            this.copyTrades(client, part, wantTrades),
          );
        } catch (err) {
          if ((err as { code?: string }).code !== UNIQUE_VIOLATION) throw err;
        }
      }
      return await this.transaction(client, part, cp, how.tx, () =>
        this.insertTrades(client, part, wantTrades),
      );
    } finally {
      await qr.release();
    }
  }

  /** One transaction: the trades (as `trades` writes them), quarantine rows and checkpoint of a part. */
  private async transaction(
    client: PoolClient,
    b: PartRows,
    cp: PartCheckpoint,
    tx: CommitToken,
    trades: () => Promise<StoredPart>,
  ): Promise<StoredPart> {
    await client.query(this.opts.durable ? "BEGIN" : "BEGIN; SET LOCAL synchronous_commit = off");
    try {
      const stored = b.symbol.length ? await trades() : { inserted: 0, buckets: [], committed: [] };
      if (b.qRaw.length)
        await client.query(INSERT_QUARANTINE, [b.qReceived, b.qRaw, b.qReason, b.qDetail, b.qMarket]);
      const { rowCount } = await client.query(UPDATE_CHECKPOINT, [
        this.opts.stream,
        JSON.stringify(cp.lastIds),
        cp.watermarkMs === null ? null : new Date(cp.watermarkMs),
        this.opts.epoch,
        String(tx.part),
        tx.token,
      ]);
      if (rowCount !== 1) throw new StreamTakenError(this.opts.stream, this.opts.epoch);
      try {
        await client.query("COMMIT");
      } catch (err) {
        throw new CommitInDoubtError(stored, err);
      }
      return stored;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    }
  }

  /**
   * Whether the transaction `tx` names was applied: its token is still the last one of its part on the
   * checkpoint row. Ask before that part commits anything else (a later transaction of the part writes
   * its own token). Throws while the database cannot answer.
   */
  committed(tx: CommitToken): Promise<boolean> {
    return new CheckpointsRepo(this.ds).applied(this.opts.stream, tx);
  }

  private async copyTrades(client: PoolClient, b: PartRows, wantTrades: boolean): Promise<StoredPart> {
    const ids = wantTrades
      ? ((await client.query(ALLOCATE_IDS, [b.symbol.length])).rows[0] as { ids: string[] }).ids
      : null;
    const copy = client.query(copyFrom(`COPY quotes (${ids ? "id, " : ""}${COPY_COLUMNS}) FROM STDIN`));
    copy.end(copyRows(b, ids));
    await finished(copy);
    const panes = new PaneSums();
    for (let k = 0; k < b.symbol.length; k++)
      panes.add(b.symbol[k], b.timeUs[k], b.seq[k], b.price[k], b.size[k]);
    await client.query(UPSERT_PANES_SQL, panes.params());
    return {
      inserted: b.symbol.length,
      buckets: [...new Set(panes.bucket)].sort((x, y) => x - y),
      committed: ids ? [allCommitted(b, ids)] : [],
    };
  }

  private async insertTrades(client: PoolClient, b: PartRows, wantTrades: boolean): Promise<StoredPart> {
    const { rows } = await client.query(wantTrades ? INSERT_TRADES : INSERT_TRADES_LEAN, [
      b.symbol,
      b.time,
      b.seq,
      b.price,
      b.size,
      b.bid,
      b.bidSize,
      b.ask,
      b.askSize,
      b.exchange,
      b.source,
      b.received,
    ]);
    const row = rows[0] as {
      inserted: number;
      buckets: string[];
      ids: string[];
      symbols: string[];
      seqs: string[];
    };
    return {
      inserted: row.inserted,
      buckets: row.buckets.map(Number).sort((x, y) => x - y),
      committed: row.inserted && wantTrades ? [committedOf(b, row)] : [],
    };
  }
}
