import type { BatchResult } from "./batch.writer";
import {
  ingestAccepted,
  ingestBatchRows,
  ingestBatchSeconds,
  ingestDropped,
  ingestDuplicates,
  ingestGapsUnrecoverable,
  ingestLost,
  ingestReceived,
  ingestRejected,
} from "./ingest.metrics";

/**
 * Per-message accounting: accepted + rejected + duplicates + dropped = received once `flush()` has
 * returned.
 */
export interface IngestCounts {
  received: { stream: number; backfill: number };
  accepted: { trades: number; quotes: number };
  rejected: Record<string, number>;
  duplicates: number;
  /**
   * Received but never written: held when ingest stopped without writing (its lease lost, Postgres gone
   * at shutdown). They are received again from the checkpoint by whoever ingests next. A batch whose
   * COMMIT lost its answer counts here only once the checkpoint row shows it was not applied (or it could
   * not be settled at shutdown); if it was applied, it counts as accepted (see InDoubtPart).
   */
  dropped: number;
  /**
   * Trades this process had committed that Postgres lost in a crash (commits are asynchronous: see
   * BatchWriterOptions.durableCommits), found when the checkpoint read at a restart is behind the one
   * committed. They are received and stored again; the rows stored are accepted trades − lost.
   */
  lost: number;
  /** Trade ids the feed could not serve any more when backfilling (a gap that stays). */
  unrecoverable: number;
  /** Times the socket was paused because the queue to Postgres was full (backpressure). */
  pauses: number;
}

const RATE_WINDOW_MS = 5000;

/** What the ingest counted, kept in step with its Prometheus metrics. */
export class IngestStats {
  private readonly c: IngestCounts = {
    received: { stream: 0, backfill: 0 },
    accepted: { trades: 0, quotes: 0 },
    rejected: {},
    duplicates: 0,
    dropped: 0,
    lost: 0,
    unrecoverable: 0,
    pauses: 0,
  };
  /** Newest event time committed, epoch ms. */
  newestCommittedMs: number | null = null;
  /** The watermark the last commit made true (or the checkpoint's, before any). */
  watermarkMs: number | null = null;
  private readonly rateSamples: { at: number; trades: number }[] = [];

  received(path: "stream" | "backfill", n = 1): void {
    this.c.received[path] += n;
    ingestReceived.inc({ path }, n);
  }

  quote(): void {
    this.c.accepted.quotes++;
    ingestAccepted.inc({ kind: "quote" });
  }

  duplicate(): void {
    this.c.duplicates++;
    ingestDuplicates.inc();
  }

  dropped(n: number): void {
    this.c.dropped += n;
    ingestDropped.inc(n);
  }

  lost(n: number): void {
    this.c.lost += n;
    ingestLost.inc(n);
  }

  unrecoverable(n: number): void {
    this.c.unrecoverable += n;
    ingestGapsUnrecoverable.inc(n);
  }

  paused(): void {
    this.c.pauses++;
  }

  /** Accounts for one committed batch. */
  committed(r: BatchResult): void {
    this.c.accepted.trades += r.inserted;
    const dups = r.trades - r.inserted;
    this.c.duplicates += dups;
    ingestAccepted.inc({ kind: "trade" }, r.inserted);
    if (dups) ingestDuplicates.inc(dups);
    for (const [reason, n] of r.quarantined) {
      this.c.rejected[reason] = (this.c.rejected[reason] ?? 0) + n;
      ingestRejected.inc({ reason }, n);
    }
    ingestBatchSeconds.observe(r.seconds);
    ingestBatchRows.observe(r.trades);
    if (r.newestMs !== null && (this.newestCommittedMs === null || r.newestMs > this.newestCommittedMs))
      this.newestCommittedMs = r.newestMs;
    if (r.watermarkMs !== null) this.watermarkMs = r.watermarkMs;
    const now = Date.now();
    this.rateSamples.push({ at: now, trades: this.c.accepted.trades });
    while (this.rateSamples.length > 2 && now - this.rateSamples[1].at > RATE_WINDOW_MS)
      this.rateSamples.shift();
  }

  /** Trades stored per second over the last few seconds; 0 when none were lately. */
  ratePerSecond(): number {
    const first = this.rateSamples[0];
    const last = this.rateSamples[this.rateSamples.length - 1];
    const span = first && last ? last.at - first.at : 0;
    return span > 0 && Date.now() - last.at < RATE_WINDOW_MS
      ? ((last.trades - first.trades) * 1000) / span
      : 0;
  }

  /** A copy of the counts. */
  counts(): IngestCounts {
    return {
      received: { ...this.c.received },
      accepted: { ...this.c.accepted },
      rejected: { ...this.c.rejected },
      duplicates: this.c.duplicates,
      dropped: this.c.dropped,
      lost: this.c.lost,
      unrecoverable: this.c.unrecoverable,
      pauses: this.c.pauses,
    };
  }

  get accepted(): number {
    return this.c.accepted.trades + this.c.accepted.quotes;
  }

  get rejected(): number {
    return Object.values(this.c.rejected).reduce((a, b) => a + b, 0);
  }

  get duplicates(): number {
    return this.c.duplicates;
  }
}
