import { performance } from "node:perf_hooks";
import type { DataSource } from "typeorm";
import { fnv1a } from "../core/hash";
import { retrying } from "../core/retry";
import type { CommittedTrades } from "../core/trades";
import {
  CommitInDoubtError,
  IngestWrites,
  StreamTakenError,
  type CommitToken,
  type PartCheckpoint,
  type PartRows,
  type StoredPart,
} from "../db/ingest-writes";
import { isUnstorable, storableText } from "../db/text";
import { log } from "../log";
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
  /** The checkpoint's last trade id per symbol as these parts committed it. */
  lastIds: Record<string, number>;
}

/**
 * A part whose COMMIT lost its answer (the connection broke while it ran) when the writer gave up: it
 * may be stored or not. `IngestWrites.committed(tx)` tells once the database answers again, as long as
 * no later transaction of the same part number committed on the stream since.
 */
export interface InDoubtPart {
  tx: CommitToken;
  /** Trades and quarantine rows in the part. */
  rows: number;
  /** What the part did, if it was applied (watermark null: its batch is not whole). */
  result: BatchResult;
}

/** The checkpoint as of the moment a batch is cut: what every row up to then makes true. */
export type CheckpointDelta = PartCheckpoint;

export interface BatchWriterOptions {
  dataSource: DataSource;
  /** Checkpoint key (`ingest_checkpoints.stream`). */
  stream: string;
  /**
   * This writer's claim on the stream (`CheckpointsRepo.claim`): every part commits only while the checkpoint row
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
  /**
   * Called after each commit, before waiting adders resume; also for the parts of a batch that did
   * commit when others gave up (then with a null watermark: the batch is not whole).
   */
  onCommitted: (result: BatchResult) => void;
  /**
   * Called with the number of rows (trades and quarantine rows) dropped unwritten: buffered when the
   * writer is abandoned or loses the stream, or in a part that gave up. A restart or another replica
   * receives them again from the checkpoint. @default none
   */
  onDropped?: (rows: number) => void;
  /**
   * Called for a part the writer gave up on while its last COMMIT's outcome was unknown (see
   * InDoubtPart): neither dropped nor committed yet, the owner settles it once the database answers
   * (IngestWrites.committed) before the next writer of the stream commits. Without it such a part
   * counts as dropped. @default none
   */
  onInDoubt?: (part: InDoubtPart) => void;
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

class Batch implements PartRows {
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

/** Spreads symbols over the connections, the same way every time. */
export function shardOf(symbol: string, n: number): number {
  return fnv1a(symbol) % n;
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
  private readonly writes: IngestWrites;
  /** Transactions begun, for their commit tokens. */
  private txCount = 0;
  /** Aborted once the writer is abandoned or loses the stream: a part waiting to retry gives up at once. */
  private readonly stopping = new AbortController();

  constructor(private readonly opts: BatchWriterOptions) {
    this.writes = new IngestWrites(opts.dataSource, {
      stream: opts.stream,
      epoch: opts.epoch,
      durable: opts.durableCommits ?? false,
    });
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
    // Once abandoned or taken, nothing more is written: a row still routed here is dropped (counted).
    if (this.closed) return this.dropped(1);
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
    if (this.closed) return this.dropped(1);
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
      .map((b, k) => ({ b, k, cp: { lastIds: ids[k], watermarkMs } }))
      .filter((p) => p.b.rows > 0 || Object.keys(p.cp.lastIds).length > 0 || p.k === 0);
    const results = await Promise.all(work.map((p) => this.commitWithRetry(p.b, p.cp, p.k)));
    const whole = results.every((x) => x !== null);
    if (whole) {
      this.wholeWatermarkMs = cp.watermarkMs;
      this.storedWatermarkMs = watermarkMs;
    }
    // Parts that committed are reported even when others gave up: their rows are stored.
    const done = results.filter((x): x is BatchResult => x !== null);
    if (!done.length) return;
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
      watermarkMs: whole ? cp.watermarkMs : null,
      newestMs: newest.length ? Math.max(...newest) : null,
      seconds: (performance.now() - started) / 1000,
      committed: done.flatMap((x) => x.committed),
      lastIds: Object.assign({}, ...done.map((x) => x.lastIds)) as Record<string, number>,
    };
    try {
      this.opts.onCommitted(result);
    } catch (err) {
      log.error({ err }, "ingest: handling a committed batch failed");
    }
  }

  /**
   * Commits one part, retrying until it is in; null when the writer gave up (closing, or the stream
   * taken), the part then counted as dropped, or handed to `onInDoubt` when its last COMMIT's outcome is
   * unknown. A COMMIT that lost its answer is settled before anything else: the checkpoint row says
   * whether it was applied (then the part is in, once), or the part is written again.
   */
  private async commitWithRetry(b: Batch, cp: CheckpointDelta, part: number): Promise<BatchResult | null> {
    let doubt: { tx: CommitToken; stored: StoredPart; started: number } | null = null;
    try {
      return await retrying(
        async () => {
          if (doubt) {
            const applied = await this.writes.committed(doubt.tx);
            const { stored, started } = doubt;
            doubt = null;
            log.info(
              { rows: b.rows, applied },
              applied
                ? "ingest: a batch whose COMMIT lost its answer was stored"
                : "ingest: a batch whose COMMIT lost its answer was not stored; writing it again",
            );
            if (applied) return this.result(b, cp, stored, started);
          }
          const tx = { part, token: `${this.opts.epoch}:${++this.txCount}` };
          const started = performance.now();
          try {
            return this.result(b, cp, await this.commit(b, cp, tx), started);
          } catch (err) {
            if (err instanceof CommitInDoubtError) doubt = { tx, stored: err.stored, started };
            throw err;
          }
        },
        {
          what: "ingest: writing a batch",
          firstMs: 100,
          maxMs: 5000,
          signal: this.stopping.signal,
          fatal: (err) => err instanceof StreamTakenError || this.closing,
        },
      );
    } catch (err) {
      if (err instanceof StreamTakenError) this.lose(err);
      else if (!this.taken)
        // Given up because the writer stops (its lease lost with Postgres, or shutdown).
        log.warn(
          { err: (err as Error).message, rows: b.rows, inDoubt: doubt !== null },
          "ingest: batch not written as ingest stops; the next ingest receives it again from the checkpoint",
        );
      const left = doubt as { tx: CommitToken; stored: StoredPart; started: number } | null;
      if (left && this.opts.onInDoubt && !this.taken) {
        const result = { ...this.result(b, cp, left.stored, left.started), watermarkMs: null };
        try {
          this.opts.onInDoubt({ tx: left.tx, rows: b.rows, result });
        } catch (e) {
          log.error({ err: e }, "ingest: handing over a batch in doubt failed");
        }
      } else this.dropped(b.rows);
      return null;
    }
  }

  /** Commits one part in one transaction (see IngestWrites.commit). */
  private commit(b: Batch, cp: CheckpointDelta, tx: CommitToken): Promise<StoredPart> {
    return this.writes.commit(b, cp, {
      mayRepeat: b.backfill,
      wantTrades: this.opts.wantTrades?.() ?? true,
      tx,
    });
  }

  /** What a part did, once committed. */
  private result(b: Batch, cp: CheckpointDelta, stored: StoredPart, started: number): BatchResult {
    const quarantined = new Map<string, number>();
    for (const r of b.qReason) quarantined.set(r, (quarantined.get(r) ?? 0) + 1);
    return {
      trades: b.symbol.length,
      inserted: stored.inserted,
      buckets: stored.buckets.map((ms) => new Date(ms)),
      quarantined,
      watermarkMs: cp.watermarkMs,
      newestMs: b.newestMs,
      seconds: (performance.now() - started) / 1000,
      committed: stored.committed,
      lastIds: cp.lastIds,
    };
  }

  /** Stops for good once another writer holds the stream: drops what it holds, tells the owner once. */
  private lose(err: StreamTakenError): void {
    if (this.taken) return;
    this.taken = this.closing = this.closed = true;
    this.stopping.abort();
    clearTimeout(this.timer);
    this.dropCurrent();
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
    this.stopping.abort();
    this.dropCurrent();
    for (const w of this.waiters.splice(0)) w();
    await this.inflight;
  }

  /** Drops the batch being filled. */
  private dropCurrent(): void {
    this.dropped(this.cur.rows);
    this.cur = new Round(this.n);
  }

  private dropped(rows: number): void {
    if (!rows) return;
    try {
      this.opts.onDropped?.(rows);
    } catch (err) {
      log.error({ err }, "ingest: accounting for dropped rows failed");
    }
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
