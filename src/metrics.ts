import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** One registry for the process, served at /metrics. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "tickgraph_" });

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
