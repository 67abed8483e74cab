/**
 * The rooms of src/ and what each may import (docs/ARCHITECTURE.md draws them). Layers run one way:
 * composition (cli, platform) → transport (server) → schema (schema, resolvers) → domain (ingest,
 * windows, policy, events) → persistence (db, entities, migrations) → core (core, config, errors, log,
 * metrics). The mock feed stands apart: a provider, not a part of the platform.
 */
const CORE = "^src/(core/|config/|errors\\.ts|log\\.ts|metrics\\.ts)";
const PERSISTENCE = "^(src/(db|entities)/|migrations/)";
const DOMAIN = "^src/(ingest|windows|policy|events)/";
const SCHEMA = "^src/(schema|resolvers)/";
const TRANSPORT = "^src/server/";
const COMPOSITION = "^src/(cli/|platform\\.ts)";

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      from: {},
      to: { circular: true, dependencyTypesNot: ["type-only"] },
    },
    {
      name: "core-imports-nothing-else",
      comment: "Core (config, errors, logging, metrics, clock, timers) is below every room.",
      severity: "error",
      from: { path: CORE },
      to: { path: "^(src|migrations)/", pathNot: CORE },
    },
    {
      name: "persistence-is-below-the-domain",
      comment: "Entities, repositories and migrations know tables, not the platform's rooms above them.",
      severity: "error",
      from: { path: PERSISTENCE },
      to: { path: `${DOMAIN}|${SCHEMA}|${TRANSPORT}|${COMPOSITION}|^src/feed/` },
    },
    {
      name: "domain-never-imports-the-transport",
      comment: "Ingest, windows, policy and events know nothing of GraphQL schemas, servers or the CLI.",
      severity: "error",
      from: { path: DOMAIN },
      to: { path: `${SCHEMA}|${TRANSPORT}|${COMPOSITION}` },
    },
    {
      name: "schema-never-imports-the-transport",
      comment: "Resolvers reach everything through the request context, never through the server.",
      severity: "error",
      from: { path: SCHEMA },
      to: { path: `${TRANSPORT}|${COMPOSITION}` },
    },
    {
      name: "transport-never-imports-composition",
      severity: "error",
      from: { path: TRANSPORT },
      to: { path: COMPOSITION },
    },
    {
      name: "the-mock-feed-stands-apart",
      comment: "The mock feed is a provider: it imports core only; the ingest may import its protocol.",
      severity: "error",
      from: { path: "^src/feed/" },
      to: { path: "^src/", pathNot: `${CORE}|^src/feed/` },
    },
    {
      name: "only-the-protocol-of-the-feed",
      comment: "What the ingest takes from the feed's room is the wire protocol, nothing of the mock.",
      severity: "error",
      from: { path: DOMAIN },
      to: { path: "^src/feed/", pathNot: "^src/feed/protocol\\.ts$" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    includeOnly: "^(src|migrations)/",
  },
};
