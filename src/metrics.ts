import { Counter, Registry, collectDefaultMetrics } from "prom-client";

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
