import { Client } from "pg";
import type { DataSource } from "typeorm";
import type { Config } from "../config/config";
import { log } from "../log";
import { createDataSource } from "./data-source";
import { startEmbeddedPostgres, type RunningPostgres } from "./embedded";
import { withDatabase } from "./naming";

export interface Database {
  dataSource: DataSource;
  /** Connection string in use (embedded or DATABASE_URL). */
  url: string;
  embedded: boolean;
  close(): Promise<void>;
  /** Stops an embedded Postgres at once (immediate shutdown); for a process that must exit now. */
  kill(): void;
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (!rowCount) await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
}

/** Connects to DATABASE_URL, or starts the embedded Postgres under DATA_DIR and uses its `tickgraph` database. */
export async function openDatabase(config: Config, opts: { poolSize?: number } = {}): Promise<Database> {
  let embedded: RunningPostgres | undefined;
  let url = config.databaseUrl;
  if (!url) {
    embedded = await startEmbeddedPostgres(config.dataDir);
    await ensureDatabase(embedded.url, "tickgraph");
    url = withDatabase(embedded.url, "tickgraph");
    log.info({ dataDir: config.dataDir }, "embedded Postgres started");
  }
  const dataSource = createDataSource({
    url,
    statementTimeoutMs: config.limits.statementTimeoutMs,
    poolSize: opts.poolSize,
  });
  try {
    await dataSource.initialize();
  } catch (err) {
    await embedded?.stop();
    const where = embedded ? "the embedded Postgres" : "DATABASE_URL";
    throw new Error(`Cannot connect to ${where}: ${(err as Error).message}`, { cause: err });
  }
  return {
    dataSource,
    url,
    embedded: !!embedded,
    async close() {
      if (dataSource.isInitialized) await dataSource.destroy();
      await embedded?.stop();
    },
    kill() {
      embedded?.kill();
    },
  };
}

/** One round trip to Postgres: throws unless the database answers. */
export async function ping(ds: DataSource): Promise<void> {
  await ds.query("SELECT 1");
}

/** SQLSTATE classes and codes, and socket errors, that mean the database went away, not that a statement was wrong. */
const CONNECTION_CODES = new Set([
  "57P01",
  "57P02",
  "57P03",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
]);

/**
 * Whether `err` says the connection to Postgres was lost or refused (a restart, a failover, an outage),
 * as opposed to a statement that failed: the first is worth a warning and a retry, the second an error.
 */
export function isConnectionLoss(err: unknown): boolean {
  if (typeof err !== "object" || err === null) return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === "string" && (code.startsWith("08") || CONNECTION_CODES.has(code))) return true;
  return (
    typeof message === "string" &&
    /Connection terminated|connection timeout|Client has encountered a connection error/i.test(message)
  );
}
