import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client as WsClient, type ClientOptions } from "graphql-ws";
import type { DataSource } from "typeorm";
import WebSocket from "ws";
import { loadConfig, type Config } from "../../src/config/config";
import { createDataSource } from "../../src/db/data-source";
import type { EventBus } from "../../src/events/bus";
import { startPlatform, type Platform, type PlatformOptions } from "../../src/platform";
import { Role } from "../../src/policy/principal";
import { createTokenVerifier, mintToken } from "../../src/policy/tokens";
import { buildTickgraphSchema } from "../../src/schema/schema";
import { Server, type RunningServer } from "../../src/server/server";
import { createTestDatabase } from "./database";

export const TEST_SECRET = "test-secret-of-at-least-thirty-two-bytes!";
/** Every replica of a deployment shares its audit key, as every test server on one database does. */
export const TEST_AUDIT_SECRET = "test-audit-key-of-at-least-thirty-two-bytes";

export interface TestPlatform {
  platform: Platform;
  config: Config;
  url: string;
  wsUrl: string;
  databaseUrl: string;
  token(sub?: string, roles?: Role[], ttlSeconds?: number): Promise<string>;
  /** POSTs a GraphQL operation; returns status and parsed body. */
  gql(
    query: string,
    opts?: { variables?: Record<string, unknown>; token?: string | null },
  ): Promise<GqlResponse>;
  ws(opts?: Partial<ClientOptions>): WsClient;
  close(): Promise<void>;
}

export interface GqlResponse {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: { data?: any; errors?: { message: string; path?: string[]; extensions?: Record<string, any> }[] };
}

/** A platform's configuration for tests: `databaseUrl`, port 0, the test key, a fresh DATA_DIR, `env` on top. */
export function testConfig(databaseUrl: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    DATABASE_URL: databaseUrl,
    PORT: "0",
    HOST: "127.0.0.1",
    JWT_SECRET: TEST_SECRET,
    AUDIT_SECRET: TEST_AUDIT_SECRET,
    DATA_DIR: mkdtempSync(join(tmpdir(), "tickgraph-data-")),
    LOG_LEVEL: process.env.LOG_LEVEL ?? "silent",
    ...env,
  });
}

/**
 * The whole platform on port 0 over a fresh database cloned from the migrated template. `before` runs on
 * that database before the platform starts (e.g. to make it a replica that does not ingest).
 */
export async function startTestPlatform(
  env: Record<string, string> = {},
  opts: PlatformOptions = {},
  /** Fills the fresh database before the platform starts (e.g. what it reads once at start). */
  seed?: (databaseUrl: string) => Promise<void>,
): Promise<TestPlatform> {
  const db = await createTestDatabase();
  await seed?.(db.url);
  // Tests that want the feed and ingest loop pass INGEST: "on" (with FEED_URL for a feed they control).
  const config = testConfig(db.url, { INGEST: "off", ...env });
  const platform = await startPlatform(config, opts);
  const { url, wsUrl } = platform.server;
  const token = (sub = "alice", roles = [Role.USER], ttl = 3600) => mintToken(TEST_SECRET, sub, roles, ttl);
  const clients: WsClient[] = [];
  const defaultToken = await token();
  return {
    platform,
    config,
    url,
    wsUrl,
    databaseUrl: db.url,
    token,
    async gql(query, opts = {}) {
      const bearer = opts.token === undefined ? defaultToken : opts.token;
      const res = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
        },
        body: JSON.stringify({ query, variables: opts.variables }),
      });
      return { status: res.status, body: (await res.json()) as GqlResponse["body"] };
    },
    ws(opts = {}) {
      const client = createClient({
        url: wsUrl,
        webSocketImpl: WebSocket,
        retryAttempts: 0,
        lazy: false,
        connectionParams: { authorization: `Bearer ${defaultToken}` },
        onNonLazyError: () => {},
        ...opts,
      });
      clients.push(client);
      return client;
    },
    async close() {
      await Promise.all(clients.map(async (c) => c.dispose()));
      await platform.close();
      await db.drop();
    },
  };
}

/** Runs one operation over graphql-ws and resolves with its single result. */
export function wsQuery(
  client: WsClient,
  query: string,
  variables?: Record<string, unknown>,
): Promise<{
  data?: unknown;
  errors?: readonly { message: string; extensions?: Record<string, unknown> }[];
}> {
  return new Promise((resolve, reject) => {
    let result: unknown;
    client.subscribe(
      { query, variables },
      {
        next: (r) => (result = r),
        error: (e) => (Array.isArray(e) ? resolve({ errors: e }) : reject(e)),
        complete: () => resolve(result as never),
      },
    );
  });
}

/**
 * Another GraphQL server (no ingest) on `t`'s database, listening to `bus`: a second replica, or a
 * server with its own limits. `close` stops it and its connections.
 */
export async function startReplica(
  t: TestPlatform,
  bus: EventBus,
  config: Config = t.config,
): Promise<RunningServer & { dataSource: DataSource }> {
  const ds = createDataSource({ url: t.databaseUrl, statementTimeoutMs: 5000, poolSize: 4 });
  await ds.initialize();
  const server = await Server.start({
    config,
    schema: buildTickgraphSchema(),
    dataSource: ds,
    verifier: createTokenVerifier({ secret: TEST_SECRET }),
    bus,
    // The same market as the platform's, on the same database.
    clock: t.platform.clock,
  });
  return {
    url: server.url,
    wsUrl: server.wsUrl,
    port: server.port,
    dataSource: ds,
    async close() {
      await server.close();
      await ds.destroy();
    },
  };
}
