import { Counter, Gauge, Histogram } from "prom-client";
import { registry } from "../metrics";

export const ingestReceived = new Counter({
  name: "tickgraph_ingest_received_total",
  help: "Feed messages received (a frame that is not an array counts once), by path: stream or backfill.",
  labelNames: ["path"] as const,
  registers: [registry],
});

export const ingestAccepted = new Counter({
  name: "tickgraph_ingest_accepted_total",
  help: "Messages accepted: trades stored, quotes applied to the latest bid/ask.",
  labelNames: ["kind"] as const,
  registers: [registry],
});

export const ingestRejected = new Counter({
  name: "tickgraph_ingest_rejected_total",
  help: "Messages quarantined, by reason.",
  labelNames: ["reason"] as const,
  registers: [registry],
});

export const ingestDuplicates = new Counter({
  name: "tickgraph_ingest_duplicates_total",
  help: "Trades dropped as already handled (in memory or by the database's unique key).",
  registers: [registry],
});

export const ingestDropped = new Counter({
  name: "tickgraph_ingest_dropped_total",
  help: "Messages received but never written, held when ingest stopped without writing (lease lost, Postgres gone at shutdown), including a batch whose COMMIT lost its answer and was found not applied; they are received again from the checkpoint.",
  registers: [registry],
});

export const ingestLost = new Counter({
  name: "tickgraph_ingest_lost_total",
  help: "Trades this process had committed that Postgres lost in a crash (asynchronous commits), found at the restart's checkpoint; they are stored again.",
  registers: [registry],
});

export const ingestBatchSeconds = new Histogram({
  name: "tickgraph_ingest_batch_commit_seconds",
  help: "Time to write and commit one batch (trades, panes, quarantine, checkpoint).",
  buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
  registers: [registry],
});

export const ingestBatchRows = new Histogram({
  name: "tickgraph_ingest_batch_rows",
  help: "Trades per committed batch.",
  buckets: [1, 10, 100, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000],
  registers: [registry],
});

let lagSource: (() => number | null) | null = null;

/**
 * Makes `source` (ms, or null before the first commit) the lag reported at each scrape, so that a stalled
 * ingest shows its lag growing rather than the value of its last commit. Returns the undo.
 */
export function reportLagFrom(source: () => number | null): () => void {
  lagSource = source;
  return () => {
    if (lagSource === source) lagSource = null;
  };
}

export const ingestLag = new Gauge({
  name: "tickgraph_ingest_lag_seconds",
  help: "How far the newest committed event time is behind the feed's clock.",
  registers: [registry],
  collect() {
    const ms = lagSource?.();
    if (ms !== null && ms !== undefined) this.set(ms / 1000);
  },
});

export const ingestGapsUnrecoverable = new Counter({
  name: "tickgraph_ingest_unrecoverable_ids_total",
  help: "Trade ids missing after a backfill because the feed no longer serves them.",
  registers: [registry],
});

export const ingestLeaseHeld = new Gauge({
  name: "tickgraph_ingest_lease_held",
  help: "1 while this replica holds the ingest lease (and so runs ingest and the window engine), else 0.",
  registers: [registry],
});
