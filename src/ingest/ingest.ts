import type { DataSource } from "typeorm";
import { unpack } from "../feed/msgpack";
import type { Asset, RawFrame, WireFormat } from "../feed/protocol";
import { log } from "../log";
import { wallClock, type MarketClock } from "../core/market-clock";
import { BatchWriter, claimStream, type BatchResult, type TradeSource } from "./batch.writer";
import type { CommittedTrades } from "./committed";
import { FeedRest, streamTrade } from "./feed.rest";
import {
  ingestAccepted,
  ingestBatchRows,
  ingestBatchSeconds,
  ingestDuplicates,
  ingestGapsUnrecoverable,
  ingestReceived,
  ingestRejected,
  reportLagFrom,
} from "./ingest.metrics";
import { jsonRendering, splitJsonArray } from "./raw.frame";
import { StreamClient, type ReconnectOptions } from "./stream.client";
import { RejectReason, Validator, WATERMARK_DELAY_MS } from "./validator";

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

export type IngestState = "starting" | "backfilling" | "streaming" | "reconnecting" | "stopped";

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

/** Per-message accounting: accepted + rejected + duplicates = received once `flush()` has returned. */
export interface IngestCounts {
  received: { stream: number; backfill: number };
  accepted: { trades: number; quotes: number };
  rejected: Record<string, number>;
  duplicates: number;
  /** Trade ids the feed could not serve any more when backfilling (a gap that stays). */
  unrecoverable: number;
  /** Times the socket was paused because the queue to Postgres was full (backpressure). */
  pauses: number;
}

export interface Ingest {
  /** The market's now: the newest accepted event time (watermark + 2 s); wall time before any data. */
  readonly clock: MarketClock;
  /** True from the first subscription on, until close (reconnects included). */
  readonly running: boolean;
  status(): IngestStatus;
  counts(): IngestCounts;
  /** Registers a listener called after each committed batch; returns its removal. */
  onCommit(listener: CommitListener): () => void;
  /** Resolves once everything received so far has been validated and committed. */
  flush(): Promise<void>;
  /** Stops reading the feed, commits what is buffered, closes. Safe to call twice. */
  close(): Promise<void>;
  /**
   * Stops reading the feed at once and writes nothing more: what is buffered is dropped (the checkpoint
   * says where to resume). For an ingest that may no longer write, e.g. its lease is lost.
   */
  abort(): Promise<void>;
}

type Item = { kind: "frame"; frame: RawFrame; receivedMs: number } | { kind: "ready" } | { kind: "gaps" };

const frameBytes = (f: RawFrame): number => (f.binary ? f.data.length : f.text.length);

interface Cursor {
  symbol: string;
  /** Ids wanted: (after, upTo]. */
  after: number;
  upTo: number;
  fresh: boolean;
  startMs: number;
  token: string | null;
  done: boolean;
  buffer: Record<string, unknown>[];
  firstId: number | null;
}

const RATE_WINDOW_MS = 5000;
/** REST requests a backfill keeps in flight. */
const BACKFILL_REQUESTS = 16;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

async function upsertInstruments(ds: DataSource, assets: Asset[]): Promise<void> {
  await ds.query(
    `INSERT INTO instruments (symbol, name, exchange, sector)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
     ON CONFLICT (symbol) DO UPDATE SET name = excluded.name, exchange = excluded.exchange, sector = excluded.sector`,
    [
      assets.map((a) => a.symbol),
      assets.map((a) => a.name),
      assets.map((a) => a.exchange),
      assets.map((a) => a.sector),
    ],
  );
}

/**
 * Starts the ingest loop in the background and returns its handle at once: reference data, checkpoint,
 * stream, validation, batched writes. Problems reaching the feed are retried, never thrown.
 */
export function startIngest(opts: IngestOptions): Ingest {
  const ds = opts.dataSource;
  const stream = opts.stream ?? opts.feedUrl;
  const rest = new FeedRest(opts.feedRestUrl, opts.key ?? "tickgraph", opts.secret ?? "tickgraph");
  const maxQueuedBytes = opts.maxQueuedBytes ?? 16 * 1024 * 1024;
  const gapCheckMs = opts.gapCheckMs ?? 3000;
  const listeners = new Set<CommitListener>();

  let state: IngestState = "starting";
  let running = false;
  let closed = false;
  /** Stopping without writing: queued input is dropped, not processed. */
  let aborted = false;
  let clockOffsetMs = 0;
  const feedNow = opts.feedClock ? () => opts.feedClock!().getTime() : () => Date.now() + clockOffsetMs;

  const counts: IngestCounts = {
    received: { stream: 0, backfill: 0 },
    accepted: { trades: 0, quotes: 0 },
    rejected: {},
    duplicates: 0,
    unrecoverable: 0,
    pauses: 0,
  };
  let newestCommittedMs: number | null = null;
  let watermarkMs: number | null = null;
  const rateSamples: { at: number; trades: number }[] = [];

  let validator: Validator | null = null;
  let writer: BatchWriter | null = null;
  let client: StreamClient | null = null;
  const seqOffsets = new Map<string, number>();

  // The queue between the socket and the single consumer: bounded in bytes by pausing the socket.
  const queue: (Item | null)[] = [];
  let queueHead = 0;
  let queuedBytes = 0;
  let wake: (() => void) | null = null;
  let socketPaused = false;
  // Items queued and items done since start: what flush() waits on.
  let pushed = 0;
  let processed = 0;
  const push = (item: Item): void => {
    pushed++;
    queue.push(item);
    if (item.kind === "frame") {
      queuedBytes += frameBytes(item.frame);
      if (queuedBytes > maxQueuedBytes && !socketPaused) {
        socketPaused = true;
        counts.pauses++;
        client?.pause();
      }
    }
    wake?.();
  };

  const onCommitted = (r: BatchResult): void => {
    opts.onBatch?.(r);
    counts.accepted.trades += r.inserted;
    const dups = r.trades - r.inserted;
    counts.duplicates += dups;
    ingestAccepted.inc({ kind: "trade" }, r.inserted);
    if (dups) ingestDuplicates.inc(dups);
    for (const [reason, n] of r.quarantined) {
      counts.rejected[reason] = (counts.rejected[reason] ?? 0) + n;
      ingestRejected.inc({ reason }, n);
    }
    ingestBatchSeconds.observe(r.seconds);
    ingestBatchRows.observe(r.trades);
    if (r.newestMs !== null && (newestCommittedMs === null || r.newestMs > newestCommittedMs))
      newestCommittedMs = r.newestMs;
    if (r.watermarkMs !== null) watermarkMs = r.watermarkMs;
    const now = Date.now();
    rateSamples.push({ at: now, trades: counts.accepted.trades });
    while (rateSamples.length > 2 && now - rateSamples[1].at > RATE_WINDOW_MS) rateSamples.shift();
    const event: CommitEvent = {
      watermark: r.watermarkMs === null ? null : new Date(r.watermarkMs),
      buckets: r.buckets,
      inserted: r.inserted,
      trades: r.committed,
    };
    for (const l of listeners) {
      try {
        l(event);
      } catch (err) {
        log.error({ err }, "ingest: a commit listener threw");
      }
    }
  };

  const quarantine = (
    raw: string,
    reason: string,
    detail: string,
    receivedMs: number,
    symbol?: string,
  ): void => {
    writer!.addQuarantine(raw, reason, detail, receivedMs, symbol);
  };

  /**
   * Judges one data message and routes it: to the writer, the quarantine, or the duplicate count. `raw`
   * gives its text for the quarantine; `note` is added to a rejection's detail.
   */
  const handle = (
    m: unknown,
    raw: () => string,
    receivedMs: number,
    source: TradeSource,
    note = "",
  ): void => {
    const v = validator!.check(m);
    switch (v.kind) {
      case "trade":
        writer!.addTrade(v.trade, receivedMs, source);
        return;
      case "quote":
        counts.accepted.quotes++;
        ingestAccepted.inc({ kind: "quote" });
        return;
      case "duplicate":
        counts.duplicates++;
        ingestDuplicates.inc();
        return;
      case "reject":
        quarantine(
          raw(),
          v.reason,
          v.detail + note,
          receivedMs,
          isRecord(m) && typeof m.S === "string" ? m.S : undefined,
        );
        return;
    }
  };

  const processFrame = (frame: RawFrame, receivedMs: number): void => {
    let parsed: unknown;
    try {
      parsed = frame.binary ? unpack(frame.data) : JSON.parse(frame.text);
    } catch {
      counts.received.stream++;
      ingestReceived.inc({ path: "stream" });
      // Bytes that do not decode have no text of their own: kept as base64, which restores them exactly.
      return frame.binary
        ? quarantine(
            frame.data.toString("base64"),
            RejectReason.MALFORMED,
            "frame is not msgpack (binary frame, kept as base64)",
            receivedMs,
          )
        : quarantine(frame.text, RejectReason.MALFORMED, "frame is not JSON", receivedMs);
    }
    // A msgpack message has no text: its JSON rendering is kept instead (event times as RFC 3339).
    const note = frame.binary ? " (msgpack message, kept as its JSON rendering)" : "";
    if (!Array.isArray(parsed)) {
      counts.received.stream++;
      ingestReceived.inc({ path: "stream" });
      return quarantine(
        frame.binary ? jsonRendering(parsed) : frame.text,
        RejectReason.MALFORMED,
        `frame is not an array${note}`,
        receivedMs,
      );
    }
    let parts: string[] | null | undefined;
    const rawOf = (k: number, m: unknown): string => {
      if (frame.binary) return jsonRendering(m);
      return (parts === undefined ? (parts = splitJsonArray(frame.text)) : parts)?.[k] ?? JSON.stringify(m);
    };
    let data = 0;
    for (let k = 0; k < parsed.length; k++) {
      const m: unknown = parsed[k];
      if (isRecord(m) && (m.T === "success" || m.T === "subscription" || m.T === "error")) {
        if (m.T === "error") log.warn({ code: m.code, msg: m.msg }, "feed reported an error");
        continue;
      }
      data++;
      handle(m, () => rawOf(k, m), receivedMs, "feed", note);
    }
    counts.received.stream += data;
    ingestReceived.inc({ path: "stream" }, data);
  };

  /** Fetches cursors' pages and feeds their trades to the validator in event-time order across symbols. */
  const runBackfill = async (cursors: Cursor[]): Promise<void> => {
    const active = cursors.filter((c) => c.upTo > c.after);
    while (active.some((c) => !c.done || c.buffer.length)) {
      if (closed) return;
      const need = active.filter((c) => !c.done && c.buffer.length === 0);
      // A pool of requests, each taking the next symbol as one returns: a slow page holds up one lane,
      // not a whole wave.
      let next = 0;
      const lane = async (): Promise<void> => {
        for (let c = need[next++]; c; c = need[next++]) {
          const page = await rest.trades(c.symbol, {
            startMs: c.startMs,
            pageToken: c.token,
            limit: opts.backfillPageSize,
          });
          for (const t of page.trades) {
            if (t.i <= c.after) continue;
            if (t.i > c.upTo) {
              c.done = true;
              break;
            }
            c.firstId ??= t.i;
            c.buffer.push(streamTrade(c.symbol, t));
          }
          c.token = page.next_page_token;
          if (!c.token) c.done = true;
        }
      };
      await Promise.all(Array.from({ length: Math.min(BACKFILL_REQUESTS, need.length) }, lane));
      // Everything up to the earliest "newest buffered time" of the unfinished symbols is complete; a
      // symbol whose page held nothing wanted yet holds everything back until its next page is in.
      let frontier = Infinity;
      for (const c of active) {
        if (c.done) continue;
        if (!c.buffer.length) {
          frontier = -Infinity;
          break;
        }
        let max = -Infinity;
        for (const t of c.buffer) max = Math.max(max, Date.parse(t.t as string));
        frontier = Math.min(frontier, max);
      }
      const ready: { t: Record<string, unknown>; ms: number }[] = [];
      for (const c of active) {
        const keep: Record<string, unknown>[] = [];
        for (const t of c.buffer) {
          const ms = Date.parse(t.t as string);
          if (ms <= frontier) ready.push({ t, ms });
          else keep.push(t);
        }
        c.buffer = keep;
      }
      ready.sort((a, b) => a.ms - b.ms);
      const receivedMs = Date.now();
      for (const { t } of ready) {
        counts.received.backfill++;
        ingestReceived.inc({ path: "backfill" });
        handle(t, () => JSON.stringify(t), receivedMs, "backfill");
        const wait = writer!.room();
        if (wait) await wait;
      }
    }
    // Whatever is still missing up to each target the feed cannot serve: note it and move on.
    for (const c of cursors) {
      const v = validator!;
      const before = v.handledUpTo(c.symbol);
      if (before >= c.upTo) {
        v.settle(c.symbol);
        continue;
      }
      let missing = 0;
      for (let id = before + 1; id <= c.upTo; id++) {
        if (v.isHandled(c.symbol, id)) continue;
        // With no checkpoint, ids before the first one served precede our span: nothing was lost.
        if (!(c.fresh && (c.firstId === null || id < c.firstId))) missing++;
      }
      if (missing) {
        counts.unrecoverable += missing;
        ingestGapsUnrecoverable.inc(missing);
        log.warn(
          { symbol: c.symbol, after: before, upTo: c.upTo, missing },
          "ingest: trade ids the feed no longer serves",
        );
      }
      v.skipTo(c.symbol, c.upTo);
    }
    writer!.touch();
  };

  /** Sets the reference clock from the feed's newest trade; returns that time (NaN when none). */
  const calibrate = (latest: Map<string, { timeMs: number }>): number => {
    let feedLatestMs = -Infinity;
    for (const l of latest.values()) feedLatestMs = Math.max(feedLatestMs, l.timeMs);
    if (!Number.isFinite(feedLatestMs)) return NaN;
    if (!opts.feedClock) clockOffsetMs = feedLatestMs - Date.now();
    return feedLatestMs;
  };

  /** After each (re)connect, before any live frame: fetch what the stream did not deliver. */
  const backfillAfterConnect = async (): Promise<void> => {
    const v = validator!;
    state = "backfilling";
    const latest = await rest.latest(v.symbols);
    const feedLatestMs = calibrate(latest);
    const now = Number.isFinite(feedLatestMs) ? feedLatestMs : feedNow();
    const resumeFrom = Math.min(v.latestEventMs ?? now, now) - (opts.backfillLookbackMs ?? 180_000);
    const cursors: Cursor[] = [];
    for (const symbol of v.symbols) {
      const fresh = v.isFresh(symbol);
      const l = latest.get(symbol);
      if (!l) {
        v.settle(symbol); // never traded: its ids start at 1, all of them on the stream
        continue;
      }
      const after = v.handledUpTo(symbol);
      if (l.id < after) {
        // Ids never go back on one feed: it was restarted and numbers anew, so its new trades collide
        // with stored ones. Point the ingest at it as a new stream (or clear the old data) to take them.
        log.warn({ symbol, feedLatest: l.id, handled: after }, "ingest: the feed's trade ids went backwards");
      }
      if (l.id <= after) {
        v.settle(symbol);
        continue;
      }
      cursors.push({
        symbol,
        after,
        upTo: l.id,
        fresh,
        startMs: fresh ? now - (opts.initialLookbackMs ?? 300_000) : resumeFrom,
        token: null,
        done: false,
        buffer: [],
        firstId: null,
      });
    }
    await runBackfill(cursors);
    log.info({ symbols: cursors.length, received: counts.received.backfill }, "ingest: backfill done");
  };

  let lastGaps = new Set<string>();
  const backfillGaps = async (): Promise<void> => {
    const v = validator!;
    const gaps = v.gaps();
    const now = new Set(gaps.map((g) => `${g.symbol}:${g.after}`));
    // Only holes that stayed open a whole period: an out-of-order trade fills its own within seconds.
    const stale = gaps.filter((g) => lastGaps.has(`${g.symbol}:${g.after}`));
    lastGaps = now;
    if (!stale.length) return;
    const from = (v.latestEventMs ?? feedNow()) - (opts.backfillLookbackMs ?? 180_000);
    await runBackfill(
      stale.map((g) => ({
        symbol: g.symbol,
        after: g.after,
        upTo: g.before - 1,
        fresh: false,
        startMs: from,
        token: null,
        done: false,
        buffer: [],
        firstId: null,
      })),
    );
  };

  const next = async (): Promise<Item | null> => {
    if (aborted) return null;
    while (queueHead >= queue.length) {
      if (closed) return null;
      await new Promise<void>((r) => (wake = r));
      wake = null;
    }
    const item = queue[queueHead];
    // Drop the reference now: a processed frame must not wait for the compaction below to be freed.
    queue[queueHead++] = null;
    if (queueHead > 1024 && queueHead * 2 > queue.length) {
      queue.splice(0, queueHead);
      queueHead = 0;
    }
    return item!;
  };

  // Consecutive failed backfills: a feed whose REST side keeps failing is retried with backoff.
  let failures = 0;
  const pump = async (): Promise<void> => {
    for (;;) {
      const item = await next();
      if (!item) return;
      try {
        if (item.kind === "frame") {
          queuedBytes -= frameBytes(item.frame);
          if (socketPaused && queuedBytes <= maxQueuedBytes / 2) {
            socketPaused = false;
            client?.resume();
          }
          processFrame(item.frame, item.receivedMs);
        } else if (item.kind === "ready") {
          await backfillAfterConnect();
          failures = 0;
          if (!closed && client?.connected) state = "streaming";
        } else {
          await backfillGaps();
        }
        const wait = writer!.room();
        if (wait) await wait;
      } catch (err) {
        const delay = Math.min(10_000, 250 * 2 ** failures++);
        log.error(
          { err, retryInMs: delay },
          "ingest: processing failed; reconnecting to backfill what was missed",
        );
        client?.pause();
        // A fresh connection re-runs the backfill, which is what recovers from a failure here.
        await client?.close();
        await new Promise((r) => setTimeout(r, delay));
        if (!closed) {
          socketPaused = false;
          client = newClient();
          client.start();
        }
      } finally {
        processed++;
      }
    }
  };

  const newClient = (): StreamClient =>
    new StreamClient({
      url: opts.feedUrl,
      key: opts.key ?? "tickgraph",
      secret: opts.secret ?? "tickgraph",
      format: opts.format,
      reconnect: opts.reconnect,
      onReady: () => {
        running = true;
        push({ kind: "ready" });
      },
      onFrame: (frame, receivedMs) => push({ kind: "frame", frame, receivedMs }),
      onDown: () => {
        state = "reconnecting";
      },
    });

  let gapTimer: NodeJS.Timeout | undefined;
  let pumping: Promise<void> = Promise.resolve();

  const setup = async (): Promise<void> => {
    let delay = 250;
    let assets: Asset[] | undefined;
    while (!closed && !assets) {
      try {
        assets = await rest.assets();
      } catch (err) {
        log.warn(
          { err: (err as Error).message, retryInMs: delay },
          "ingest: feed reference data unavailable",
        );
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
    if (closed || !assets) return;
    await upsertInstruments(ds, assets);
    const symbols = assets.map((a) => a.symbol);
    validator = new Validator({ symbols, maxSkewMs: opts.maxSkewMs, clock: feedNow });
    // Claimed before anything the stream wrote is read: whatever an earlier writer still commits is then
    // in what follows, or is refused.
    const epoch = opts.epoch ?? (await claimStream(ds, stream));
    if (opts.freshFeed) {
      // The checkpoint starts over, as long as the stream is still this writer's.
      const [{ n }]: { n: number }[] = await ds.query(
        `WITH reset AS (UPDATE ingest_checkpoints SET last_ids = '{}', watermark = NULL, updated_at = now()
                        WHERE stream = $1 AND epoch = $2::int8 RETURNING 1)
         SELECT count(*)::int AS n FROM reset`,
        [stream, epoch],
      );
      if (!n) {
        log.error({ stream, epoch }, "ingest: another writer claimed the stream before this one started");
        void abort();
        return;
      }
      const rows: { symbol: string; max: string | null }[] = await ds.query(
        `SELECT s AS symbol, (SELECT max(seq) FROM quotes q WHERE q.symbol = s)::text AS max FROM unnest($1::text[]) AS s`,
        [symbols],
      );
      for (const r of rows) if (r.max !== null) seqOffsets.set(r.symbol, Number(r.max));
    } else {
      const rows: { last_ids: Record<string, number>; watermark: Date | null }[] = await ds.query(
        `SELECT last_ids, watermark FROM ingest_checkpoints WHERE stream = $1`,
        [stream],
      );
      if (rows[0]) {
        validator.restore(rows[0].last_ids, rows[0].watermark?.getTime() ?? null);
        watermarkMs = rows[0].watermark?.getTime() ?? null;
      }
    }
    const v = validator;
    writer = new BatchWriter({
      dataSource: ds,
      stream,
      epoch,
      // Another writer holds the stream now (this replica lost its lease): stop reading the feed too.
      onTaken: () => void abort(),
      batchSize: opts.batchSize,
      maxDelayMs: opts.maxBatchDelayMs,
      checkpoint: () => ({ lastIds: v.takeCheckpoint(), watermarkMs: v.watermarkMs }),
      onCommitted,
      durableCommits: opts.durableCommits,
      connections: opts.writerConnections,
      seqOffset: (symbol) => seqOffsets.get(symbol) ?? 0,
      marketNow: () => latestMs(),
      wantTrades: opts.wantTrades,
    });
    if (closed) return;
    pumping = pump();
    client = newClient();
    client.start();
    gapTimer = setInterval(() => {
      if (client?.connected && state === "streaming") push({ kind: "gaps" });
    }, gapCheckMs);
  };
  const starting = (async () => {
    for (let delay = 500; !closed; delay = Math.min(delay * 2, 10_000)) {
      try {
        return await setup();
      } catch (err) {
        log.error({ err, retryInMs: delay }, "ingest: start failed; retrying");
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  })();

  const lagMs = (): number | null =>
    newestCommittedMs === null ? null : Math.max(0, feedNow() - newestCommittedMs);
  const stopReportingLag = reportLagFrom(lagMs);

  const latestMs = (): number | null =>
    validator?.latestEventMs ?? (watermarkMs === null ? null : watermarkMs + WATERMARK_DELAY_MS);

  let closing: Promise<void> | undefined;
  let aborting: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      closed = true;
      clearInterval(gapTimer);
      stopReportingLag();
      await starting;
      await client?.close();
      wake?.();
      await pumping;
      await (aborted ? writer?.abandon() : writer?.close());
      state = "stopped";
      running = false;
    })();
    return closing;
  };
  const abort = (): Promise<void> => {
    aborting ??= (async () => {
      closed = aborted = true;
      wake?.();
      // Nothing more reaches Postgres, even while the stream and the pump wind down.
      const abandoned = writer?.abandon();
      await close();
      await abandoned;
    })();
    return aborting;
  };
  const fallback = opts.clockFallback ?? wallClock;
  return {
    clock: {
      now: () => {
        const ms = latestMs();
        return ms === null ? fallback.now() : new Date(ms);
      },
    },
    get running() {
      return running && !closed;
    },
    status() {
      const first = rateSamples[0];
      const last = rateSamples[rateSamples.length - 1];
      const span = first && last ? last.at - first.at : 0;
      return {
        state,
        feedUrl: opts.feedUrl,
        connected: client?.connected ?? false,
        watermark: watermarkMs === null ? null : new Date(watermarkMs),
        lagMs: lagMs(),
        accepted: counts.accepted.trades + counts.accepted.quotes,
        rejected: Object.values(counts.rejected).reduce((a, b) => a + b, 0),
        duplicates: counts.duplicates,
        ratePerSecond:
          span > 0 && Date.now() - last.at < RATE_WINDOW_MS
            ? ((last.trades - first.trades) * 1000) / span
            : 0,
      };
    },
    counts: () => ({
      received: { ...counts.received },
      accepted: { ...counts.accepted },
      rejected: { ...counts.rejected },
      duplicates: counts.duplicates,
      unrecoverable: counts.unrecoverable,
      pauses: counts.pauses,
    }),
    onCommit(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    async flush() {
      await starting;
      const target = pushed;
      while (processed < target) await new Promise((r) => setTimeout(r, 5));
      await writer?.flush();
    },
    close,
    abort,
  };
}
