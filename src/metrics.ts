import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** One registry for the process, served at /metrics. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "tickgraph_" });
// Gauges named like counters (`_total`), which Prometheus's naming rules refuse; the same figures stay
// by type in tickgraph_nodejs_active_{handles,requests,resources}, whose sum they were.
for (const total of ["handles", "requests", "resources"])
  registry.removeSingleMetric(`tickgraph_nodejs_active_${total}_total`);

export const dbQueries = new Counter({
  name: "tickgraph_db_queries_total",
  help: "SQL statements sent to Postgres.",
  registers: [registry],
});

export const graphqlOperations = new Counter({
  name: "tickgraph_graphql_operations_total",
  help: "GraphQL operations executed, by type and outcome.",
  labelNames: ["transport", "type", "outcome"] as const,
  registers: [registry],
});

export const graphqlExecutions = new Counter({
  name: "tickgraph_graphql_executions_total",
  help: "HTTP operations executed, by engine: compiled (graphql-jit), or graphql-js for mutations, subscriptions and what could not be compiled.",
  labelNames: ["engine"] as const,
  registers: [registry],
});

export const auditEntries = new Counter({
  name: "tickgraph_audit_entries_total",
  help: "Access-log entries, by outcome (written, or failed and their responses withheld).",
  labelNames: ["outcome"] as const,
  registers: [registry],
});

export const auditFlushSeconds = new Histogram({
  name: "tickgraph_audit_flush_seconds",
  help: "Time to write one group-committed batch of access-log entries.",
  buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
  registers: [registry],
});

export const subscriptionsShared = new Gauge({
  name: "tickgraph_subscription_streams",
  help: "Shared subscription streams running: one per distinct operation, variables and policy view.",
  registers: [registry],
});

export const subscribers = new Gauge({
  name: "tickgraph_subscribers",
  help: "Subscriptions receiving events from a shared stream.",
  registers: [registry],
});

export const subscriptionSlowClosed = new Counter({
  name: "tickgraph_subscription_slow_consumers_total",
  help: "Connections closed (4008) because a subscription's queue of unread events overflowed.",
  registers: [registry],
});

export const auditCheckpointSeq = new Gauge({
  name: "tickgraph_audit_checkpoint_seq",
  help: "Seq of the newest access-log entry this replica signed in a head checkpoint (kept outside the database).",
  registers: [registry],
});

export const auditTailMissing = new Counter({
  name: "tickgraph_audit_tail_missing_total",
  help: "Writes that found access-log entries this replica had written missing from the table.",
  registers: [registry],
});

export const dbListenerConnected = new Gauge({
  name: "tickgraph_db_listener_connected",
  help: "1 while the LISTEN connection (events across replicas, policy changes) is up, else 0.",
  registers: [registry],
});

export const dbListenerReconnects = new Counter({
  name: "tickgraph_db_listener_reconnects_total",
  help: "Times the LISTEN connection was re-established after it was lost.",
  registers: [registry],
});

export const natsConnected = new Gauge({
  name: "tickgraph_nats_connected",
  help: "With EVENT_BUS=nats: 1 while the connection to NATS (events across replicas) is up, else 0.",
  registers: [registry],
});

export const natsReconnects = new Counter({
  name: "tickgraph_nats_reconnects_total",
  help: "With EVENT_BUS=nats: times the connection to NATS was re-established after it was lost.",
  registers: [registry],
});

/** Latency buckets of requests and operations, seconds: from a cached lookup to a slow export. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export const graphqlOperationSeconds = new Histogram({
  name: "tickgraph_graphql_operation_duration_seconds",
  help: "GraphQL operations from request to response (a subscription: until its stream ends), by transport, type and outcome (ok or error).",
  labelNames: ["transport", "type", "outcome"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const httpResponseSeconds = new Histogram({
  name: "tickgraph_http_response_duration_seconds",
  help: "HTTP responses, from request to the last byte sent, by route and status.",
  labelNames: ["route", "status"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const dbQuerySeconds = new Histogram({
  name: "tickgraph_db_query_duration_seconds",
  help: "SQL statements of the read path (queries, pages, lookups), from send to result.",
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
  registers: [registry],
});

export const websocketConnections = new Gauge({
  name: "tickgraph_websocket_connections",
  help: "Open WebSocket connections on the GraphQL path.",
  registers: [registry],
});

export const exportRows = new Counter({
  name: "tickgraph_export_rows_total",
  help: "Rows streamed by CSV and NDJSON exports, by dataset.",
  labelNames: ["dataset"] as const,
  registers: [registry],
});

export const exportsRunning = new Gauge({
  name: "tickgraph_exports_running",
  help: "CSV and NDJSON exports streaming now.",
  registers: [registry],
});

let windowLagSource: (() => number | null) | null = null;

/**
 * Makes `source` (ms the window engine trails its watermark by, or null before it has one) what each
 * scrape reports, so that a stalled engine shows its lag growing. Returns the undo.
 */
export function reportWindowLagFrom(source: () => number | null): () => void {
  windowLagSource = source;
  return () => {
    if (windowLagSource === source) windowLagSource = null;
  };
}

export const windowWatermarkLag = new Gauge({
  name: "tickgraph_window_watermark_lag_seconds",
  help: "How far the window engine's emitted windows trail the watermark (the newest window end it could emit).",
  registers: [registry],
  collect() {
    const ms = windowLagSource?.();
    if (ms !== null && ms !== undefined) this.set(ms / 1000);
  },
});
