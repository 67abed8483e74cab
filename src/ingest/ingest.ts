import type { DataSource } from "typeorm";
import { Disposer } from "../core/disposer";
import { WATERMARK_DELAY_MS } from "../core/market";
import { wallClock, type MarketClock } from "../core/market-clock";
import { retrying } from "../core/retry";
import type { CommittedTrades } from "../core/trades";
import { CheckpointsRepo } from "../db/checkpoints.repo";
import { InstrumentsRepo } from "../db/instruments.repo";
import type { WireFormat } from "../feed/protocol";
import { log } from "../log";
import { Backfiller, FeedClock } from "./backfill";
import { BatchWriter, type BatchResult, type InDoubtPart } from "./batch.writer";
import { FeedRest } from "./feed.rest";
import { FrameQueue, type Item } from "./frame-queue";
import { reportLagFrom } from "./ingest.metrics";
import { Router } from "./router";
import { IngestStats, type IngestCounts } from "./stats";
import { StreamClient, type ReconnectOptions } from "./stream.client";
import { Validator } from "./validator";

export type { IngestCounts } from "./stats";

export interface IngestOptions {
  dataSource: DataSource;
  /** The stream, e.g. `ws://127.0.0.1:8765/v2/iex`. */
  feedUrl: string;
  /**
   * The base of the feed's REST API (reference data, snapshots, trade history for backfill), e.g.
   * `http://127.0.0.1:8765`: the mock serves it on the stream's host and port, a real provider elsewhere.
   */
  feedRestUrl: string;
  /** The stream's encoding (see StreamClientOptions.format). @default "msgpack" */
  format?: WireFormat;
  /** @default "tickgraph" */
  key?: string;
  /** @default "tickgraph" */
  secret?: string;
  /** Checkpoint key in `ingest_checkpoints`. @default feedUrl */
  stream?: string;
  /**
   * The feed's now, when known (the embedded mock's simulated clock). Otherwise wall time, shifted by
   * what the feed's snapshots show at each connect. Used for the skew bound and for lag.
   * @default wall time calibrated by snapshots
   */
  feedClock?: () => Date;
  /** Rows per batch. @default 5000 */
  batchSize?: number;
  /** Parallel transactions per batch, each over its own symbols (see BatchWriterOptions.connections). @default 2 */
  writerConnections?: number;
  /** Longest a row waits for its batch, ms. @default 50 */
  maxBatchDelayMs?: number;
  /** Unprocessed stream bytes held in memory before the socket is paused. @default 16777216 */
  maxQueuedBytes?: number;
  /** How far ahead of the feed's clock an event time may lie. @default 300000 */
  maxSkewMs?: number;
  /** On reconnect, how far before the newest event time the REST backfill starts. @default 180000 */
  backfillLookbackMs?: number;
  /** With no checkpoint, how much of the feed's recent history to load first. @default 300000 */
  initialLookbackMs?: number;
  /** Trades per REST page when backfilling (the protocol allows up to 10,000). @default 10000 */
  backfillPageSize?: number;
  /** How long a hole in a symbol's ids may stay open mid-stream before it is backfilled, ms. @default 3000 */
  gapCheckMs?: number;
  reconnect?: ReconnectOptions;
  /**
   * Start from scratch and number trades after the highest `seq` stored per symbol: for a feed that
   * restarts its ids with every run (the embedded mock). @default false
   */
  freshFeed?: boolean;
  /** Wait for each batch's commit to reach disk (see BatchWriterOptions.durableCommits). @default false */
  durableCommits?: boolean;
  /** Whether commit listeners need each batch's new trades (see BatchWriterOptions.wantTrades). @default always */
  wantTrades?: () => boolean;
  /** Observes every committed batch (sizes, commit time), e.g. for a benchmark. @default none */
  onBatch?: (result: BatchResult) => void;
  /** What `clock` answers before any data or checkpoint gives it a time. @default wall time */
  clockFallback?: MarketClock;
  /**
   * The last trade id per symbol this process committed to the stream in an earlier run (an ingest
   * started again after its lease was lost): a checkpoint found behind it means Postgres lost commits
   * in a crash, counted as `lost`. @default none
   */
  committedBefore?: Record<string, number>;
  /**
   * Parts an earlier run of this process gave up while their COMMIT's outcome was unknown
   * (`partsInDoubt()` of that run): settled from the checkpoint row before this run writes, counted as
   * accepted if they were stored, as dropped if not. @default none
   */
  inDoubtBefore?: InDoubtPart[];
  /**
   * This writer's claim on the stream, made when the ingest lease was taken (`IngestLease` claims on the
   * session holding its lock). Without it the ingest claims the stream itself at start. @default claimed at start
   */
  epoch?: string;
}

/** What commit listeners receive after each committed batch. */
export interface CommitEvent {
  /** Highest accepted event time − 2 s as the batch was cut; null before any trade. */
  watermark: Date | null;
  /** Distinct 10-second pane starts that got new trades, ascending. */
  buckets: Date[];
  /** New trade rows. */
  inserted: number;
  /** Those rows, as the writer held them (with their ids). */
  trades: CommittedTrades[];
}

/** Called synchronously after each commit: keep it short and defer real work (it runs on the ingest path). */
export type CommitListener = (event: CommitEvent) => void;

export type IngestState = "starting" | "backfilling" | "streaming" | "reconnecting" | "stopping" | "stopped";

export interface IngestStatus {
  state: IngestState;
  feedUrl: string;
  connected: boolean;
  watermark: Date | null;
  /** Feed clock − newest committed event time, ms; null before the first commit. */
  lagMs: number | null;
  /** Trades stored + quotes applied. */
  accepted: number;
  /** Inputs quarantined. */
  rejected: number;
  duplicates: number;
  /** Trades stored per second, over the last few seconds. */
  ratePerSecond: number;
}

/** What runs once reference data and the checkpoint are loaded. */
interface Running {
  validator: Validator;
  writer: BatchWriter;
  router: Router;
  backfiller: Backfiller;
  queue: FrameQueue;
  client: StreamClient;
  /** The consumer of `queue`. */
  pump: Promise<void>;
}

/** The stream's condition while running. */
type StreamState = "backfilling" | "streaming" | "reconnecting";

type Lifecycle =
  | { phase: "starting" }
  | { phase: "running"; run: Running; stream: StreamState }
  | { phase: "stopping"; run: Running | null }
  | { phase: "stopped" };

/**
 * The ingest loop of one stream: reference data and checkpoint, then the stream's frames through one
 * queue to one consumer (validation, batched writes), with a REST backfill after every (re)connect and
 * for holes that stay open. Problems reaching the feed or Postgres are retried, never thrown. Start it
 * with `startIngest`.
 */
export class Ingest {
  /** The market's now: the newest accepted event time (watermark + 2 s); `clockFallback` before any data. */
  readonly clock: MarketClock;
  private state: Lifecycle = { phase: "starting" };
  private readonly disposer = new Disposer();
  private readonly listeners = new Set<CommitListener>();
  private readonly stats = new IngestStats();
  private readonly feedClock: FeedClock;
  private readonly stream: string;
  /** Aborted when closing: a start being retried stops. */
  private readonly stopping = new AbortController();
  /** Stopping without writing: what is buffered is dropped. */
  private aborted = false;
  /** True from the first subscription on. */
  private subscribed = false;
  private readonly starting: Promise<void>;
  private closing: Promise<void> | undefined;
  /** The last trade id per symbol committed (by this run, or `committedBefore`). */
  private readonly committedIds: Record<string, number>;
  /** Parts given up with their COMMIT's outcome unknown, not settled yet (see `inDoubtBefore`). */
  private readonly inDoubt: InDoubtPart[];

  constructor(private readonly opts: IngestOptions) {
    this.stream = opts.stream ?? opts.feedUrl;
    this.committedIds = { ...opts.committedBefore };
    this.inDoubt = [...(opts.inDoubtBefore ?? [])];
    this.feedClock = new FeedClock(opts.feedClock);
    const fallback = opts.clockFallback ?? wallClock;
    this.clock = {
      now: () => {
        const ms = this.latestMs();
        return ms === null ? fallback.now() : new Date(ms);
      },
    };
    this.disposer.add(
      "lag metric",
      reportLagFrom(() => this.lagMs()),
    );
    this.starting = retrying(() => this.start(), {
      what: "ingest: starting",
      firstMs: 500,
      maxMs: 10_000,
      signal: this.stopping.signal,
    }).catch(() => undefined);
  }

  /** True from the first subscription on, until close (reconnects included). */
  get running(): boolean {
    return this.subscribed && this.state.phase === "running";
  }

  private get run(): Running | null {
    return this.state.phase === "running" || this.state.phase === "stopping" ? this.state.run : null;
  }

  private setStream(stream: StreamState): void {
    if (this.state.phase === "running") this.state = { ...this.state, stream };
  }

  /** Reference data, the claim on the stream, the checkpoint; then the writer, the consumer, the stream. */
  private async start(): Promise<void> {
    const ds = this.opts.dataSource;
    const rest = new FeedRest(
      this.opts.feedRestUrl,
      this.opts.key ?? "tickgraph",
      this.opts.secret ?? "tickgraph",
    );
    const assets = await rest.assets();
    if (this.state.phase !== "starting") return;
    await new InstrumentsRepo(ds).upsert(assets);
    const symbols = assets.map((a) => a.symbol);
    const validator = new Validator({
      symbols,
      maxSkewMs: this.opts.maxSkewMs,
      clock: () => this.feedClock.now(),
    });
    const checkpoints = new CheckpointsRepo(ds);
    // Claimed before anything the stream wrote is read: whatever an earlier writer still commits is then
    // in what follows, or is refused.
    const epoch = this.opts.epoch ?? (await checkpoints.claim(this.stream));
    await this.settleInDoubt(checkpoints);
    let seqOffsets = new Map<string, number>();
    if (this.opts.freshFeed) {
      // The ids start over, as long as the stream is still this writer's; the watermark stays, so a
      // trade timed before it is as late as it would have been in the last run.
      const cp = await checkpoints.reset(this.stream, epoch);
      if (!cp) {
        log.error(
          { stream: this.stream, epoch },
          "ingest: another writer claimed the stream before this one started",
        );
        void this.abort();
        return;
      }
      validator.restore({}, cp.watermark?.getTime() ?? null);
      this.stats.watermarkMs = cp.watermark?.getTime() ?? null;
      seqOffsets = await checkpoints.highestSeqs(symbols);
    } else {
      const cp = await checkpoints.read(this.stream);
      this.countLost(cp?.lastIds ?? {});
      if (cp) {
        validator.restore(cp.lastIds, cp.watermark?.getTime() ?? null);
        this.stats.watermarkMs = cp.watermark?.getTime() ?? null;
      }
    }
    if (this.state.phase !== "starting") return;
    const writer = new BatchWriter({
      dataSource: ds,
      stream: this.stream,
      epoch,
      // Another writer holds the stream now (this replica lost its lease): stop reading the feed too.
      onTaken: () => void this.abort(),
      batchSize: this.opts.batchSize,
      maxDelayMs: this.opts.maxBatchDelayMs,
      checkpoint: () => ({ lastIds: validator.takeCheckpoint(), watermarkMs: validator.watermarkMs }),
      onCommitted: (r) => this.committed(r),
      onDropped: (n) => this.stats.dropped(n),
      onInDoubt: (part) => this.inDoubt.push(part),
      durableCommits: this.opts.durableCommits,
      connections: this.opts.writerConnections,
      seqOffset: (symbol) => seqOffsets.get(symbol) ?? 0,
      marketNow: () => this.latestMs(),
      wantTrades: this.opts.wantTrades,
    });
    this.disposer.add("batch writer", () => (this.aborted ? writer.abandon() : writer.close()));
    const router = new Router(validator, writer, this.stats);
    let client: StreamClient | null = null;
    const queue = new FrameQueue(this.opts.maxQueuedBytes ?? 16 * 1024 * 1024, {
      pause: () => {
        this.stats.paused();
        client?.pause();
      },
      resume: () => client?.resume(),
    });
    const backfiller = new Backfiller({
      rest,
      validator,
      writer,
      router,
      stats: this.stats,
      clock: this.feedClock,
      stopped: () => this.state.phase !== "running",
      lookbackMs: this.opts.backfillLookbackMs ?? 180_000,
      initialLookbackMs: this.opts.initialLookbackMs ?? 300_000,
      pageSize: this.opts.backfillPageSize,
    });
    client = new StreamClient({
      url: this.opts.feedUrl,
      key: this.opts.key ?? "tickgraph",
      secret: this.opts.secret ?? "tickgraph",
      format: this.opts.format,
      reconnect: this.opts.reconnect,
      onReady: () => {
        this.subscribed = true;
        queue.unpause();
        queue.push({ kind: "ready" });
      },
      onFrame: (frame, receivedMs) => queue.push({ kind: "frame", frame, receivedMs }),
      onDown: () => this.setStream("reconnecting"),
    });
    const run: Running = { validator, writer, router, backfiller, queue, client, pump: Promise.resolve() };
    this.state = { phase: "running", run, stream: "backfilling" };
    run.pump = this.pump(run);
    this.disposer.add("consumer", async () => {
      if (this.aborted) queue.drop();
      else queue.end();
      await run.pump;
    });
    this.disposer.add("stream", () => client.close());
    client.start();
    const gapTimer = setInterval(() => {
      if (client.connected && this.state.phase === "running" && this.state.stream === "streaming")
        queue.push({ kind: "gaps" });
    }, this.opts.gapCheckMs ?? 3000);
    this.disposer.add("gap check", () => clearInterval(gapTimer));
  }

  /** The one consumer: frames, backfills after (re)connects and of gaps, in the order they came. */
  private async pump(run: Running): Promise<void> {
    for (let item: Item | null; (item = await run.queue.next()); run.queue.done()) {
      try {
        if (item.kind === "frame") run.router.frame(item.frame, item.receivedMs);
        else if (item.kind === "ready") {
          this.setStream("backfilling");
          await run.backfiller.afterConnect();
          run.client.settled();
          if (run.client.connected) this.setStream("streaming");
        } else await run.backfiller.gaps();
        const wait = run.writer.room();
        if (wait) await wait;
      } catch (err) {
        log.error({ err }, "ingest: processing failed; reconnecting to backfill what was missed");
        // A fresh connection re-runs the backfill, which is what recovers from a failure here.
        run.client.reconnect();
      }
    }
  }

  /**
   * Trades committed earlier (`committedIds`) beyond the checkpoint now stored were lost by Postgres in
   * a crash (commits are asynchronous); they are received again from the checkpoint on.
   */
  private countLost(stored: Record<string, number>): void {
    let lost = 0;
    for (const [symbol, id] of Object.entries(this.committedIds)) {
      const now = stored[symbol] ?? 0;
      if (id > now) {
        lost += id - now;
        this.committedIds[symbol] = now;
      }
    }
    if (!lost) return;
    this.stats.lost(lost);
    log.warn(
      { stream: this.stream, lost },
      "ingest: Postgres lost committed trades in a crash (asynchronous commits); receiving them again",
    );
  }

  /**
   * Settles the parts in doubt from the checkpoint row (before this run's writer commits anything, which
   * could replace their tokens): stored ones count as accepted (and committed, for `lost`), the rest as
   * dropped (they are received again from the checkpoint).
   */
  private async settleInDoubt(checkpoints: CheckpointsRepo): Promise<void> {
    while (this.inDoubt.length) {
      const part = this.inDoubt[0];
      const applied = await checkpoints.applied(this.stream, part.tx);
      this.inDoubt.shift();
      log.info(
        { stream: this.stream, rows: part.rows, applied },
        applied
          ? "ingest: a batch whose COMMIT lost its answer was stored"
          : "ingest: a batch whose COMMIT lost its answer was not stored; receiving it again",
      );
      if (!applied) {
        this.stats.dropped(part.rows);
        continue;
      }
      for (const [symbol, id] of Object.entries(part.result.lastIds))
        if (id > (this.committedIds[symbol] ?? 0)) this.committedIds[symbol] = id;
      this.stats.committed(part.result);
    }
  }

  /** Parts given up with their COMMIT's outcome unknown and not settled: hand them to the next run. */
  partsInDoubt(): InDoubtPart[] {
    return [...this.inDoubt];
  }

  /** The last trade id per symbol committed so far (including `committedBefore`). */
  lastCommittedIds(): Record<string, number> {
    return { ...this.committedIds };
  }

  private committed(r: BatchResult): void {
    for (const [symbol, id] of Object.entries(r.lastIds))
      if (id > (this.committedIds[symbol] ?? 0)) this.committedIds[symbol] = id;
    this.opts.onBatch?.(r);
    this.stats.committed(r);
    const event: CommitEvent = {
      watermark: r.watermarkMs === null ? null : new Date(r.watermarkMs),
      buckets: r.buckets,
      inserted: r.inserted,
      trades: r.committed,
    };
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        log.error({ err }, "ingest: a commit listener threw");
      }
    }
  }

  private latestMs(): number | null {
    const wm = this.stats.watermarkMs;
    return this.run?.validator.latestEventMs ?? (wm === null ? null : wm + WATERMARK_DELAY_MS);
  }

  private lagMs(): number | null {
    const newest = this.stats.newestCommittedMs;
    return newest === null ? null : Math.max(0, this.feedClock.now() - newest);
  }

  status(): IngestStatus {
    const s = this.state;
    const wm = this.stats.watermarkMs;
    return {
      state: s.phase === "running" ? s.stream : s.phase,
      feedUrl: this.opts.feedUrl,
      connected: this.run?.client.connected ?? false,
      watermark: wm === null ? null : new Date(wm),
      lagMs: this.lagMs(),
      accepted: this.stats.accepted,
      rejected: this.stats.rejected,
      duplicates: this.stats.duplicates,
      ratePerSecond: this.stats.ratePerSecond(),
    };
  }

  counts(): IngestCounts {
    return this.stats.counts();
  }

  /** Registers a listener called after each committed batch; returns its removal. */
  onCommit(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Resolves once everything received so far has been validated and committed. */
  async flush(): Promise<void> {
    await this.starting;
    const run = this.run;
    if (!run) return;
    await run.queue.drained();
    await run.writer.flush();
  }

  /** Stops reading the feed, commits what is buffered, closes. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = { phase: "stopping", run: this.run };
      this.stopping.abort();
      await this.starting;
      await this.disposer.dispose();
      // A last run (not one aborted to be started again, which hands them over): settled now if the
      // database answers, else counted as dropped.
      if (!this.aborted && this.inDoubt.length)
        await this.settleInDoubt(new CheckpointsRepo(this.opts.dataSource)).catch((err: Error) => {
          const rows = this.inDoubt.splice(0).reduce((n, p) => n + p.rows, 0);
          log.warn(
            { stream: this.stream, rows, err: err.message },
            "ingest: batches whose COMMIT lost its answer could not be settled; counted as dropped",
          );
          this.stats.dropped(rows);
        });
      this.state = { phase: "stopped" };
    })();
    return this.closing;
  }

  /**
   * Stops reading the feed at once and writes nothing more: what is buffered is dropped (the checkpoint
   * says where to resume). For an ingest that may no longer write, e.g. its lease is lost.
   */
  async abort(): Promise<void> {
    if (!this.aborted) {
      this.aborted = true;
      const run = this.run;
      run?.queue.drop();
      // Nothing more reaches Postgres, even while the stream and the consumer wind down.
      const abandoned = run?.writer.abandon();
      await this.close();
      await abandoned;
    }
    await this.close();
  }
}

/**
 * Starts the ingest loop in the background and returns its handle at once: reference data, checkpoint,
 * stream, validation, batched writes. Problems reaching the feed are retried, never thrown.
 */
export function startIngest(opts: IngestOptions): Ingest {
  return new Ingest(opts);
}
