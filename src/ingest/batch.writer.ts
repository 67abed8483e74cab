import { performance } from "node:perf_hooks";
import { finished } from "node:stream/promises";
import type { PoolClient } from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { DataSource } from "typeorm";
import { isUnstorable, storableText } from "../db/text";
import { log } from "../log";
import { mergePanesSql, PaneSums, UPSERT_PANES_SQL } from "../db/panes.repo";
import { allCommitted, committedOf, type CommittedTrades } from "./committed";
import type { AcceptedTrade } from "./validator";

/** How a trade reached the ingest; stored in `quotes.source`. */
export type TradeSource = "feed" | "backfill";

/** What one committed batch did. */
export interface BatchResult {
  /** Trades in the batch. */
  trades: number;
  /** Of them, new rows (the rest lost on the unique key: duplicates). */
  inserted: number;
  /** Distinct 10-second pane starts that got new trades. */
  buckets: Date[];
  /** Quarantine rows written, by reason. */
  quarantined: Map<string, number>;
  /** The watermark as of the batch's cut (what every part of it makes true once all committed). */
  watermarkMs: number | null;
  /** Newest event time among the batch's trades, epoch ms (null without trades). */
  newestMs: number | null;
  /** Wall time from cut to commit, all parts of the batch. */
  seconds: number;
  /** The new rows, one piece per part of the batch. */
  committed: CommittedTrades[];
}

/** The checkpoint as of the moment a batch is cut: what every row up to then makes true. */
export interface CheckpointDelta {
  /** Symbol → highest id below which all are handled; only symbols that moved. */
  lastIds: Record<string, number>;
  watermarkMs: number | null;
}

export interface BatchWriterOptions {
  dataSource: DataSource;
  /** Checkpoint key (`ingest_checkpoints.stream`). */
  stream: string;
  /**
   * This writer's claim on the stream (`claimStream`): every part commits only while the checkpoint row
   * still carries it, so a writer another one has since replaced writes nothing more.
   */
  epoch: string;
  /**
   * Called once when a commit finds the stream claimed by another writer: the writer has dropped what
   * it held and refuses everything from then on; stop feeding it. @default none
   */
  onTaken?: () => void;
  /** Trades + quarantine rows that make a batch; adding more waits for the batch in flight. @default 5000 */
  batchSize?: number;
  /** Longest a row waits before its batch is written, in ms. @default 50 */
  maxDelayMs?: number;
  /** Called once per batch as it is cut. */
  checkpoint: () => CheckpointDelta;
  /** Called after each commit, before waiting adders resume. */
  onCommitted: (result: BatchResult) => void;
  /**
   * Wait for each commit to reach disk. Off is safe here: a batch's rows and its checkpoint commit
   * together, so a Postgres crash that loses the last batches loses their checkpoint too, and the restart
   * backfills them; it saves a WAL flush per batch. @default false
   */
  durableCommits?: boolean;
  /**
   * Transactions per batch, run in parallel on as many connections, each over its own symbols: they
   * touch disjoint rows of quotes and panes, so they never wait for each other but at the checkpoint
   * row, and Postgres uses more than one core. Listeners hear of a batch once all its parts committed.
   * @default 2
   */
  connections?: number;
  /** The market's now (epoch ms, null before any data), stamped on each quarantined input. @default none */
  marketNow?: () => number | null;
  /** Added to a symbol's trade ids to make `quotes.seq` (a restarted embedded feed counts from 1 again). @default 0 */
  seqOffset?: (symbol: string) => number;
  /**
   * Whether a batch's new rows (ids) are wanted back, e.g. for live tick subscribers; asked per batch.
   * Returning them costs a few percent of each batch. @default always
   */
  wantTrades?: () => boolean;
}

class Batch {
  symbol: string[] = [];
  time: string[] = [];
  timeUs: number[] = [];
  seq: number[] = [];
  price: number[] = [];
  size: number[] = [];
  bid: (number | null)[] = [];
  bidSize: (number | null)[] = [];
  ask: (number | null)[] = [];
  askSize: (number | null)[] = [];
  exchange: string[] = [];
  source: string[] = [];
  received: number[] = [];
  newestMs: number | null = null;
  qReceived: number[] = [];
  /** The market's time when each rejected input arrived (null before any): delays of quarantine use it. */
  qMarket: (number | null)[] = [];
  qRaw: string[] = [];
  qReason: string[] = [];
  qDetail: string[] = [];
  /** Holds backfilled trades, which may overlap rows already stored. */
  backfill = false;

  get rows(): number {
    return this.symbol.length + this.qRaw.length;
  }

  /** Row numbers in key order (symbol, then seq): neighbouring index entries land on the same pages. */
  keyOrder(): number[] {
    const bySymbol = new Map<string, number[]>();
    for (let k = 0; k < this.symbol.length; k++) {
      const rows = bySymbol.get(this.symbol[k]);
      if (rows) rows.push(k);
      else bySymbol.set(this.symbol[k], [k]);
    }
    const out: number[] = [];
    for (const symbol of [...bySymbol.keys()].sort()) {
      const rows = bySymbol.get(symbol)!;
      // Ids arrive nearly in order: the check spares the sort in the common case.
      if (rows.some((r, k) => k > 0 && this.seq[r] < this.seq[rows[k - 1]]))
        rows.sort((x, y) => this.seq[x] - this.seq[y]);
      for (const r of rows) out.push(r);
    }
    return out;
  }
}

const COPY_ESCAPES: Record<string, string> = { "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r" };
/** A text value in COPY's text format. */
const copyText = (v: string): string =>
  /[\\\t\n\r]/.test(v) ? v.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]) : v;
const copyValue = (v: number | null): string => (v === null ? "\\N" : String(v));

const COPY_COLUMNS =
  "symbol, event_time, seq, price, size, bid, bid_size, ask, ask_size, exchange, source, received_at";

/** The trades of a batch as COPY text, in key order, with their ids when given. */
function copyRows(b: Batch, ids: string[] | null): string {
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

/** One batch: a part per connection, each holding the trades of its own symbols. */
class Round {
  readonly parts: Batch[];
  rows = 0;
  /** Something besides rows changed (the checkpoint) and deserves a commit. */
  touched = false;
  firstAt = 0;

  constructor(n: number) {
    this.parts = Array.from({ length: n }, () => new Batch());
  }
}

/** What a part's trades left in the database. */
interface Stored {
  /** New rows (the rest lost on the unique key: duplicates). */
  inserted: number;
  /** Distinct pane starts (epoch ms) that got new trades. */
  buckets: number[];
  committed: CommittedTrades[];
}

const UNIQUE_VIOLATION = "23505";

/** FNV-1a: spreads symbols over the connections, the same way every time. */
export function shardOf(symbol: string, n: number): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < symbol.length; k++) h = Math.imul(h ^ symbol.charCodeAt(k), 0x01000193);
  return (h >>> 0) % n;
}

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
    updated_at = now()
  WHERE c.stream = $1 AND c.epoch = $4::int8`;

/**
 * Makes the caller the stream's only writer ($1: the stream): a new epoch on its checkpoint row (made
 * when missing), which each batch of the writer holding it checks in its own transaction. A batch an
 * earlier writer still has in flight either commits before the claim, and so before anything read
 * after it, or fails at its checkpoint and rolls back. Returns `epoch` (a bigint, as text).
 */
export const CLAIM_STREAM = `
  INSERT INTO ingest_checkpoints AS c (stream, epoch) VALUES ($1, nextval('ingest_epochs'))
  ON CONFLICT (stream) DO UPDATE SET epoch = excluded.epoch, updated_at = now()
  RETURNING c.epoch::text AS epoch`;

/**
 * Claims the stream (CLAIM_STREAM) and returns the epoch to hand its writer. The ingest lease claims on
 * the session that holds its lock, so that a replica whose lock is gone cannot claim; this is for a
 * writer without a lease.
 */
export async function claimStream(ds: DataSource, stream: string): Promise<string> {
  const [row] = (await ds.query(CLAIM_STREAM, [stream])) as { epoch: string }[];
  return row.epoch;
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

/** What Postgres cannot hold (NUL, unpaired surrogates) is kept escaped, and the detail says so. */
function storable(raw: string, detail: string): [string, string] {
  return isUnstorable(raw)
    ? [storableText(raw), `${detail} (NUL and unpaired surrogates escaped as \\uXXXX)`]
    : [raw, detail];
}

/**
 * Buffers trades and quarantine rows and writes them in batches: by size or after a short delay,
 * whichever comes first, one batch in flight at a time. A batch is one transaction per connection (see
 * `connections`), each holding trades (COPY, or an `unnest` insert idempotent on `(symbol, seq)` where
 * repeats may be among them: see `commit`), their panes, quarantine rows and the checkpoint of its
 * symbols, so a crash never leaves them out of step.
 * While a batch is in flight the next one fills; once it is full, `room()` makes the producer wait, so
 * memory stays bounded when Postgres is slower than the feed. A failed part is retried (with backoff)
 * until it commits or the writer closes; a part that finds the stream claimed by another writer (see
 * `epoch`) ends the writer.
 */
export class BatchWriter {
  private readonly n: number;
  private cur: Round;
  private inflight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private waiters: (() => void)[] = [];
  private closed = false;
  private closing = false;
  /** Another writer claimed the stream: nothing more is written. */
  private taken = false;
  private readonly shards = new Map<string, number>();
  readonly batchSize: number;
  readonly maxDelayMs: number;
  private readonly seqOffset: (symbol: string) => number;
  /** Watermark as of the cut of the last batch whose parts all committed. */
  private wholeWatermarkMs: number | null = null;
  /** Watermark the last committed checkpoint carries (may lag `wholeWatermarkMs` by one batch). */
  private storedWatermarkMs: number | null = null;

  constructor(private readonly opts: BatchWriterOptions) {
    this.batchSize = opts.batchSize ?? 5000;
    this.maxDelayMs = opts.maxDelayMs ?? 50;
    this.seqOffset = opts.seqOffset ?? (() => 0);
    this.n = Math.max(1, Math.floor(opts.connections ?? 2));
    this.cur = new Round(this.n);
  }

  /** Rows waiting for the next batch. */
  get buffered(): number {
    return this.cur.rows;
  }

  private shard(symbol: string): number {
    let k = this.shards.get(symbol);
    if (k === undefined) this.shards.set(symbol, (k = shardOf(symbol, this.n)));
    return k;
  }

  addTrade(t: AcceptedTrade, receivedMs: number, source: TradeSource): void {
    if (this.taken) return;
    const b = this.cur.parts[this.shard(t.symbol)];
    b.symbol.push(t.symbol);
    b.time.push(t.time);
    b.timeUs.push(t.timeUs);
    b.seq.push(t.id + this.seqOffset(t.symbol));
    b.price.push(t.price);
    b.size.push(t.size);
    b.bid.push(t.bid);
    b.bidSize.push(t.bidSize);
    b.ask.push(t.ask);
    b.askSize.push(t.askSize);
    b.exchange.push(t.exchange);
    b.source.push(source);
    if (source === "backfill") b.backfill = true;
    b.received.push(receivedMs);
    if (b.newestMs === null || t.timeMs > b.newestMs) b.newestMs = t.timeMs;
    this.added();
  }

  /**
   * `symbol`, when the input names one, puts the row in that symbol's part: a trade quarantined as LATE
   * counts as handled in the symbol's checkpoint, so both must commit together.
   */
  addQuarantine(raw: string, reason: string, detail: string, receivedMs: number, symbol?: string): void {
    if (this.taken) return;
    const [text, why] = storable(raw, detail);
    const b = this.cur.parts[symbol === undefined ? 0 : this.shard(symbol)];
    b.qReceived.push(receivedMs);
    b.qMarket.push(this.opts.marketNow?.() ?? null);
    b.qRaw.push(text);
    b.qReason.push(reason);
    b.qDetail.push(why);
    this.added();
  }

  /** Asks for a commit even without rows (the checkpoint moved on its own, e.g. after a backfill). */
  touch(): void {
    if (this.taken) return;
    this.cur.touched = true;
    if (this.cur.firstAt === 0) this.cur.firstAt = performance.now();
    this.schedule();
  }

  private added(): void {
    const r = this.cur;
    r.rows++;
    if (r.firstAt === 0) r.firstAt = performance.now();
    if (r.rows >= this.batchSize) this.kick();
    else this.schedule();
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.kick();
    }, this.maxDelayMs);
  }

  /**
   * Undefined when another row may be added now; otherwise a promise that resolves once the full batch
   * has been handed to Postgres. Producers await it between messages: that is the backpressure.
   */
  room(): Promise<void> | undefined {
    if (this.cur.rows < this.batchSize || this.closed) return undefined;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private kick(): void {
    if (this.inflight || this.closed) return;
    const r = this.cur;
    if (r.rows === 0 && !r.touched) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.cur = new Round(this.n);
    const cp = this.opts.checkpoint();
    this.inflight = this.commitRound(r, cp).finally(() => {
      this.inflight = null;
      const next = this.cur;
      if (
        next.rows >= this.batchSize ||
        (next.rows > 0 && performance.now() - next.firstAt >= this.maxDelayMs)
      )
        this.kick();
      else if (next.rows > 0 || next.touched) this.schedule();
      const ready = this.waiters;
      if (this.cur.rows < this.batchSize) {
        this.waiters = [];
        for (const w of ready) w();
      }
    });
  }

  private async commitRound(r: Round, cp: CheckpointDelta): Promise<void> {
    const started = performance.now();
    const ids: Record<string, number>[] = r.parts.map(() => ({}));
    for (const [symbol, id] of Object.entries(cp.lastIds)) ids[this.shard(symbol)][symbol] = id;
    const parts = r.parts.filter((b, k) => b.rows > 0 || Object.keys(ids[k]).length > 0 || k === 0).length;
    // A batch in several transactions may commit in part: a crash between them must not leave a stored
    // watermark ahead of the part that was lost, or its trades would come back LATE on replay. So such
    // a batch stores the watermark of the last batch committed whole, which every trade of this batch
    // was accepted at or after; a batch in one transaction stores its own.
    const watermarkMs = parts === 1 ? cp.watermarkMs : this.wholeWatermarkMs;
    const work = r.parts
      .map((b, k) => ({ b, cp: { lastIds: ids[k], watermarkMs } }))
      .filter((p, k) => p.b.rows > 0 || Object.keys(p.cp.lastIds).length > 0 || k === 0);
    const results = await Promise.all(work.map((p) => this.commitWithRetry(p.b, p.cp)));
    if (results.some((x) => x === null)) return;
    this.wholeWatermarkMs = cp.watermarkMs;
    this.storedWatermarkMs = watermarkMs;
    const done = results as BatchResult[];
    const quarantined = new Map<string, number>();
    for (const x of done)
      for (const [reason, n] of x.quarantined) quarantined.set(reason, (quarantined.get(reason) ?? 0) + n);
    const buckets = [...new Set(done.flatMap((x) => x.buckets.map((d) => d.getTime())))].sort(
      (a, b) => a - b,
    );
    const newest = done.map((x) => x.newestMs).filter((x): x is number => x !== null);
    const result: BatchResult = {
      trades: done.reduce((n, x) => n + x.trades, 0),
      inserted: done.reduce((n, x) => n + x.inserted, 0),
      buckets: buckets.map((ms) => new Date(ms)),
      quarantined,
      watermarkMs: cp.watermarkMs,
      newestMs: newest.length ? Math.max(...newest) : null,
      seconds: (performance.now() - started) / 1000,
      committed: done.flatMap((x) => x.committed),
    };
    try {
      this.opts.onCommitted(result);
    } catch (err) {
      log.error({ err }, "ingest: handling a committed batch failed");
    }
  }

  /** Commits one part, retrying until it is in; null when the writer is closing and gave up. */
  private async commitWithRetry(b: Batch, cp: CheckpointDelta): Promise<BatchResult | null> {
    let delay = 100;
    for (;;) {
      try {
        return await this.commit(b, cp);
      } catch (err) {
        if (err instanceof StreamTakenError) {
          this.lose(err);
          return null;
        }
        if (this.taken) return null;
        if (this.closing) {
          log.error({ err, rows: b.rows }, "ingest: batch not written at shutdown; a restart backfills it");
          return null;
        }
        log.error({ err, rows: b.rows, retryInMs: delay }, "ingest: batch write failed; retrying");
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  /**
   * Commits one part in one transaction. Its trades go in by COPY, their panes merged from sums taken
   * here: the fast way, when none of them is stored yet. A part that may hold stored trades (a
   * backfill), or whose COPY meets the unique key, goes in by `INSERT … ON CONFLICT DO NOTHING`
   * instead, its panes merged from what the insert returns, so that a repeat is never counted twice.
   */
  private async commit(b: Batch, cp: CheckpointDelta): Promise<BatchResult> {
    const started = performance.now();
    const wantTrades = b.symbol.length > 0 && (this.opts.wantTrades?.() ?? true);
    const qr = this.opts.dataSource.createQueryRunner();
    const client = (await qr.connect()) as PoolClient;
    try {
      let stored: Stored | null = null;
      if (!b.backfill) {
        try {
          stored = await this.transaction(client, b, cp, () => this.copyTrades(client, b, wantTrades));
        } catch (err) {
          if ((err as { code?: string }).code !== UNIQUE_VIOLATION) throw err;
        }
      }
      stored ??= await this.transaction(client, b, cp, () => this.insertTrades(client, b, wantTrades));
      const quarantined = new Map<string, number>();
      for (const r of b.qReason) quarantined.set(r, (quarantined.get(r) ?? 0) + 1);
      return {
        trades: b.symbol.length,
        inserted: stored.inserted,
        buckets: stored.buckets.sort((x, y) => x - y).map((ms) => new Date(ms)),
        quarantined,
        watermarkMs: cp.watermarkMs,
        newestMs: b.newestMs,
        seconds: (performance.now() - started) / 1000,
        committed: stored.committed,
      };
    } finally {
      await qr.release();
    }
  }

  /** One transaction: the trades (as `trades` writes them), quarantine rows and checkpoint of a part. */
  private async transaction(
    client: PoolClient,
    b: Batch,
    cp: CheckpointDelta,
    trades: () => Promise<Stored>,
  ): Promise<Stored> {
    await client.query(this.opts.durableCommits ? "BEGIN" : "BEGIN; SET LOCAL synchronous_commit = off");
    try {
      const stored = b.symbol.length ? await trades() : { inserted: 0, buckets: [], committed: [] };
      if (b.qRaw.length)
        await client.query(INSERT_QUARANTINE, [b.qReceived, b.qRaw, b.qReason, b.qDetail, b.qMarket]);
      const { rowCount } = await client.query(UPDATE_CHECKPOINT, [
        this.opts.stream,
        JSON.stringify(cp.lastIds),
        cp.watermarkMs === null ? null : new Date(cp.watermarkMs),
        this.opts.epoch,
      ]);
      if (rowCount !== 1) throw new StreamTakenError(this.opts.stream, this.opts.epoch);
      await client.query("COMMIT");
      return stored;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    }
  }

  private async copyTrades(client: PoolClient, b: Batch, wantTrades: boolean): Promise<Stored> {
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
      buckets: [...new Set(panes.bucket)],
      committed: ids ? [allCommitted(b, ids)] : [],
    };
  }

  private async insertTrades(client: PoolClient, b: Batch, wantTrades: boolean): Promise<Stored> {
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
      buckets: row.buckets.map(Number),
      committed: row.inserted && wantTrades ? [committedOf(b, row)] : [],
    };
  }

  /** Stops for good once another writer holds the stream: drops what it holds, tells the owner once. */
  private lose(err: StreamTakenError): void {
    if (this.taken) return;
    this.taken = this.closing = this.closed = true;
    clearTimeout(this.timer);
    this.cur = new Round(this.n);
    for (const w of this.waiters.splice(0)) w();
    log.error(
      { stream: err.stream, epoch: err.epoch },
      "ingest: another writer claimed the stream; this one stops without writing what it held",
    );
    try {
      this.opts.onTaken?.();
    } catch (e) {
      log.error({ err: e }, "ingest: handling the loss of the stream failed");
    }
  }

  /** Waits until every row added before the call is committed (rows added meanwhile may wait longer). */
  async flush(): Promise<void> {
    if (this.inflight) await this.inflight;
    if (this.cur.rows > 0 || this.cur.touched) this.kick();
    if (this.inflight) await this.inflight;
  }

  /**
   * Stops at once: what is buffered is dropped (a restart or another replica backfills it from the
   * checkpoint), a part being retried gives up, nothing further is written. Resolves once the batch in
   * flight, if any, has settled. For a writer that may no longer write (its ingest lease is lost).
   */
  async abandon(): Promise<void> {
    clearTimeout(this.timer);
    this.closing = true;
    this.closed = true;
    this.cur = new Round(this.n);
    for (const w of this.waiters.splice(0)) w();
    await this.inflight;
  }

  /** Commits everything buffered (once nothing is added any more), then refuses further batches. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.closing = true;
    while (!this.taken && (this.inflight || this.cur.rows > 0 || this.cur.touched)) await this.flush();
    if (!this.taken && this.storedWatermarkMs !== this.wholeWatermarkMs) {
      // The last batch stored the one before's watermark: a checkpoint-only commit (one transaction)
      // stores the latest, so that a restart resumes exactly where this run stopped.
      this.touch();
      await this.flush();
    }
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
  }
}
