import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";

/** A setting that cannot be used as given; the message says what to fix. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface Limits {
  /** Deepest selection a query may nest. @default 12 */
  maxDepth: number;
  /** Highest estimated cost, list fields counted by their `first`. @default 50000 */
  maxCost: number;
  /** Most aliases in one operation. @default 30 */
  maxAliases: number;
  /** Largest `first` a page may ask for; more is refused, never clamped. @default 1000 */
  maxPageSize: number;
  /** Largest request: an HTTP body or a WebSocket message, in bytes; larger is refused unread. @default 1048576 */
  maxRequestBytes: number;
  /** Largest response body (one HTTP result or WebSocket event), in bytes; larger is replaced by an error. @default 16777216 */
  maxResponseBytes: number;
  /** Postgres statement_timeout for every query. @default 5000 */
  statementTimeoutMs: number;
  /** Open WebSocket connections one principal may hold on this replica. @default 32 */
  maxConnectionsPerPrincipal: number;
  /** Running subscriptions one principal may hold on this replica. @default 200 */
  maxSubscriptionsPerPrincipal: number;
  /**
   * The total cost (as the cost limit counts it, per event) of the subscriptions one principal may
   * hold running on this replica. @default 50000
   */
  maxSubscriptionCost: number;
  /**
   * Events one subscription may have waiting while its client reads too slowly (rankings and boards
   * keep only the newest); past it the connection is closed with 4008. @default 1000
   */
  subscriptionQueue: number;
  /** Most operations in one batched HTTP request (a JSON array of operations). @default 10 */
  maxBatchSize: number;
  /** Highest total cost of the operations of one batch (each one is also held to `maxCost`). @default 200000 */
  maxBatchCost: number;
  /** CSV and NDJSON exports running at once on this replica (each streams over a connection of its own). @default 4 */
  maxExports: number;
}

export interface Config {
  /** External Postgres; unset = embedded Postgres under `dataDir`. */
  databaseUrl?: string;
  /** @default 4000 */
  port: number;
  /** @default "0.0.0.0" */
  host: string;
  /** Where embedded Postgres and generated secrets live. @default ".tickgraph" */
  dataDir: string;
  /** External feed (Alpaca v2 stream protocol); unset = embedded mock feed. */
  feedUrl?: string;
  /**
   * The external feed's REST base (Alpaca market-data v2: snapshots, trade history for backfill). Real
   * providers serve it from another host than the stream (Alpaca: https://data.alpaca.markets).
   * @default with `feedUrl`, its host and port over http(s) (where `tickgraph feed` serves both); without, the embedded mock's
   */
  feedRestUrl?: string;
  /** Encoding asked of the feed's stream. @default "msgpack" */
  feedFormat: "msgpack" | "json";
  feedKey: string;
  feedSecret: string;
  /** Run the feed (embedded unless `feedUrl`) and the ingest loop in `serve`; INGEST=off turns both off. @default true */
  ingest: boolean;
  /**
   * Where events (ticks, windows, access-log entries) travel: "memory" within this process; "postgres"
   * through LISTEN/NOTIFY, or "nats" through a NATS server, so that subscribers on every replica sharing
   * the database receive them.
   * @default "memory"
   */
  eventBus: "memory" | "postgres" | "nats";
  /** The NATS servers of EVENT_BUS=nats (one URL or several, comma-separated). @default "nats://127.0.0.1:4222" */
  natsUrl: string;
  /**
   * The subject the replicas of one deployment share on NATS: deployments on one NATS server each need
   * their own. @default "tickgraph"
   */
  natsSubject: string;
  /** This replica's name: shown as the ingest lease's holder and in logs. @default "<hostname>:<pid>" */
  replica: string;
  /**
   * How often a replica without the ingest lease tries to take it (and the holder checks its hold), ms:
   * about how long ingest pauses when the holder dies. @default 1000
   */
  leaseRetryMs: number;
  /** HS256 key; unset with no `jwksUrl` = a key generated once under `dataDir`. */
  jwtSecret?: string;
  /**
   * Keys the access log's hash chain and signs its checkpoints; it must stay outside the database and be
   * the same on every replica. Unset = a key generated once under `dataDir`.
   */
  auditSecret?: string;
  /** How often the access log's head is checkpointed outside the database (and at every stop), s. @default 10 */
  auditCheckpointSeconds: number;
  /** RS256/ES256 key set URL, instead of `jwtSecret`. */
  jwksUrl?: string;
  /**
   * How long a stop (SIGTERM, SIGINT) may take, s: past it, `serve` exits (status 1) whatever it still
   * waits for, e.g. a Postgres that does not answer. @default 10
   */
  shutdownGraceSeconds: number;
  /** How old data must be for principals without REALTIME. @default 900 */
  delaySeconds: number;
  /** @default "info" */
  logLevel: string;
  /**
   * Schema introspection for authenticated principals (explorers and BI tools discover the schema with
   * it); never for anonymous callers, who get nothing but 401. Independent of NODE_ENV. @default true
   */
  introspection: boolean;
  /**
   * Browser origins allowed to call GraphQL and the exports across origins (CORS, preflights for
   * `authorization` and `content-type`); `*` allows any. Other origins get no CORS headers. @default []
   */
  corsOrigins: string[];
  limits: Limits;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name}=${raw} is not valid: use a whole number from ${min} to ${max}.`);
  }
  return n;
}

function onOff(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (raw === "on" || raw === "true" || raw === "1") return true;
  if (raw === "off" || raw === "false" || raw === "0") return false;
  throw new ConfigError(`${name}=${raw} is not valid: use on or off.`);
}

function oneOf<T extends string>(env: Env, name: string, values: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!(values as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name}=${raw} is not valid: use one of ${values.join(", ")}.`);
  }
  return raw as T;
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a URL: "${raw}". Expected e.g. ${protocols[0]}//host:port/…`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use ${protocols.join(" or ")}, got "${parsed.protocol}".`);
  }
  return raw;
}

/** `ws://host:port/v2/iex` → `http://host:port`: where `tickgraph feed` serves its REST API. */
function restBaseOf(streamUrl: string): string {
  const u = new URL(streamUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  return u.origin;
}

/** Origins as browsers send them (`scheme://host[:port]`, no path), or `*` alone. */
function origins(env: Env, name: string): string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return [];
  const list = raw
    .split(",")
    .map((o) => o.trim())
    .filter(Boolean);
  if (list.includes("*")) {
    if (list.length > 1) throw new ConfigError(`${name}: * allows every origin; list no others beside it.`);
    return list;
  }
  for (const o of list) {
    let origin: string | null = null;
    try {
      origin = new URL(o).origin;
    } catch {
      // reported below
    }
    if (origin !== o) {
      throw new ConfigError(
        `${name}: "${o}" is not an origin: use scheme://host[:port] with no path or trailing slash, e.g. https://bi.example.com.`,
      );
    }
  }
  return list;
}

/** NATS server URLs, comma-separated (a cluster's seeds): nats:// or tls://, each with a host. */
function natsUrls(env: Env): string {
  const raw = env.NATS_URL;
  if (raw === undefined || raw.trim() === "") return "nats://127.0.0.1:4222";
  for (const one of raw.split(",").map((u) => u.trim())) {
    let parsed: URL | null = null;
    try {
      parsed = new URL(one);
    } catch {
      // reported below
    }
    if (!parsed || !["nats:", "tls:"].includes(parsed.protocol) || !parsed.hostname) {
      throw new ConfigError(
        `NATS_URL: "${one}" is not a NATS server URL: use nats://host:port (or tls://), several comma-separated.`,
      );
    }
  }
  return raw;
}

function natsSubject(env: Env): string {
  const raw = env.NATS_SUBJECT;
  if (raw === undefined || raw === "") return "tickgraph";
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(raw) || raw.length > 100) {
    throw new ConfigError(
      `NATS_SUBJECT=${raw} is not valid: use up to 100 letters, digits, _ and -, in tokens separated by dots.`,
    );
  }
  return raw;
}

function replicaName(env: Env): string {
  const raw = env.REPLICA_NAME;
  if (raw === undefined || raw === "") return `${hostname()}:${process.pid}`;
  if (!/^[\x21-\x7e]{1,40}$/.test(raw)) {
    throw new ConfigError(
      `REPLICA_NAME=${raw} is not valid: use 1 to 40 printable ASCII characters without spaces.`,
    );
  }
  return raw;
}

/**
 * Reads every setting once: explicit overrides (CLI flags) first, then the environment, then defaults.
 * Throws ConfigError naming the variable to fix.
 */
export function loadConfig(overrides: Env = {}, env: Env = process.env): Config {
  const e: Env = { ...env };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) e[k] = v;

  const logLevel = e.LOG_LEVEL || "info";
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL=${logLevel} is not valid: use one of ${LOG_LEVELS.join(", ")}.`);
  }
  const jwtSecret = e.JWT_SECRET || undefined;
  const jwksUrl = url(e, "JWKS_URL", ["https:", "http:"]);
  if (jwtSecret && jwksUrl) {
    throw new ConfigError("Set JWT_SECRET or JWKS_URL, not both: tokens are verified one way.");
  }
  for (const name of ["JWT_SECRET", "AUDIT_SECRET"]) {
    const secret = e[name];
    if (secret && Buffer.byteLength(secret) < 32) {
      throw new ConfigError(`${name} is too short: use at least 32 bytes (e.g. \`openssl rand -hex 32\`).`);
    }
  }
  const feedUrl = url(e, "FEED_URL", ["ws:", "wss:"]);
  if (feedUrl && (!e.FEED_KEY || !e.FEED_SECRET)) {
    throw new ConfigError("FEED_URL is set: set FEED_KEY and FEED_SECRET too, the feed asks for them.");
  }
  const feedRestUrl = url(e, "FEED_REST_URL", ["https:", "http:"]);
  if (feedRestUrl && !feedUrl) {
    throw new ConfigError(
      "FEED_REST_URL is set without FEED_URL: the embedded mock feed serves its own REST API; set FEED_URL too, or unset FEED_REST_URL.",
    );
  }

  return {
    databaseUrl: url(e, "DATABASE_URL", ["postgres:", "postgresql:"]),
    port: int(e, "PORT", 4000, 0, 65535),
    host: e.HOST || "0.0.0.0",
    dataDir: resolve(e.DATA_DIR || ".tickgraph"),
    feedUrl,
    feedRestUrl: feedRestUrl ?? (feedUrl ? restBaseOf(feedUrl) : undefined),
    feedFormat: oneOf(e, "FEED_FORMAT", ["msgpack", "json"] as const, "msgpack"),
    feedKey: e.FEED_KEY || "tickgraph",
    feedSecret: e.FEED_SECRET || "tickgraph",
    ingest: onOff(e, "INGEST", true),
    eventBus: oneOf(e, "EVENT_BUS", ["memory", "postgres", "nats"] as const, "memory"),
    natsUrl: natsUrls(e),
    natsSubject: natsSubject(e),
    replica: replicaName(e),
    leaseRetryMs: int(e, "LEASE_RETRY_MS", 1000, 100, 60_000),
    jwtSecret,
    jwksUrl,
    auditSecret: e.AUDIT_SECRET || undefined,
    auditCheckpointSeconds: int(e, "AUDIT_CHECKPOINT_SECONDS", 10, 1, 3600),
    delaySeconds: int(e, "DELAY_SECONDS", 900, 0, 86400 * 7),
    shutdownGraceSeconds: int(e, "SHUTDOWN_GRACE_SECONDS", 10, 1, 3600),
    logLevel,
    introspection: onOff(e, "INTROSPECTION", true),
    corsOrigins: origins(e, "CORS_ORIGINS"),
    limits: {
      maxDepth: int(e, "MAX_DEPTH", 12, 2, 100),
      maxCost: int(e, "MAX_COST", 50_000, 10, 10_000_000),
      maxAliases: int(e, "MAX_ALIASES", 30, 0, 1000),
      maxPageSize: int(e, "MAX_PAGE_SIZE", 1000, 1, 100_000),
      maxRequestBytes: int(e, "MAX_REQUEST_BYTES", 1024 * 1024, 1024, 256 * 1024 * 1024),
      maxResponseBytes: int(e, "MAX_RESPONSE_BYTES", 16 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
      statementTimeoutMs: int(e, "STATEMENT_TIMEOUT_MS", 5000, 100, 600_000),
      maxConnectionsPerPrincipal: int(e, "MAX_CONNECTIONS_PER_PRINCIPAL", 32, 1, 1_000_000),
      maxSubscriptionsPerPrincipal: int(e, "MAX_SUBSCRIPTIONS_PER_PRINCIPAL", 200, 1, 1_000_000),
      maxSubscriptionCost: int(e, "MAX_SUBSCRIPTION_COST", 50_000, 10, 100_000_000),
      subscriptionQueue: int(e, "SUBSCRIPTION_QUEUE", 1000, 1, 1_000_000),
      maxBatchSize: int(e, "MAX_BATCH_SIZE", 10, 1, 1000),
      maxBatchCost: int(e, "MAX_BATCH_COST", 200_000, 10, 100_000_000),
      maxExports: int(e, "MAX_EXPORTS", 4, 1, 100),
    },
  };
}

/** A secret: the setting when given, else the one kept in `dataDir/file`, generated there on first use. */
function secretOf(config: Config, given: string | undefined, file: string, create = true): string {
  if (given) return given;
  const path = join(config.dataDir, file);
  try {
    return readFileSync(path, "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    if (!create) throw new MissingKeyError(path);
    mkdirSync(config.dataDir, { recursive: true });
    const secret = randomBytes(32).toString("hex");
    writeFileSync(path, secret + "\n", { mode: 0o600, flag: "wx" });
    return secret;
  }
}

/** A key that was to be read, not made, is missing. */
export class MissingKeyError extends ConfigError {
  constructor(readonly path: string) {
    super(`There is no key at ${path}.`);
  }
}

/**
 * The HS256 key: JWT_SECRET when set, else the one kept in `dataDir/jwt-secret`, so tokens minted by
 * `tickgraph token` stay valid across restarts of the embedded platform. Generated there on first use
 * unless `create` is false (MissingKeyError then).
 */
export function jwtSecretOf(config: Config, create = true): string {
  return secretOf(config, config.jwtSecret, "jwt-secret", create);
}

/** The access log's key: AUDIT_SECRET when set, else one generated once in `dataDir/audit-key`. */
export function auditSecretOf(config: Config): string {
  return secretOf(config, config.auditSecret, "audit-key");
}

/** Where the access log's latest signed head checkpoint is kept. */
export const auditCheckpointFile = (config: Config): string => join(config.dataDir, "access-log.checkpoint");
