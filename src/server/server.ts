import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import type { GraphQLSchema } from "graphql";
import type { DataSource } from "typeorm";
import { WebSocketServer } from "ws";
import { createServer as netServer } from "node:net";
import { auditCheckpointFile, auditSecretOf, ConfigError, type Config } from "../config/config";
import { Disposer } from "../core/disposer";
import type { MarketClock } from "../core/market-clock";
import { ExportsRepo } from "../db/exports.sql";
import { QuarantineRepo } from "../db/quarantine.repo";
import { readListSizes } from "../db/sizes";
import { PgListener } from "../db/listener";
import { sqlOf, urlOf } from "../db/sql";
import { createEventBus, Topic, type EventBus } from "../events/bus";
import { log } from "../log";
import { AuditKey } from "../policy/audit";
import { Governance } from "../policy/governance";
import type { TokenVerifier } from "../policy/tokens";
import type { IngestServices } from "../resolvers/context.type";
import { CONFLATING } from "../resolvers/live.resolver";
import { enforcePolicy } from "../schema/enforce";
import { AccessAudit } from "./access-audit";
import { PrincipalCaps } from "./caps";
import { OperationContexts } from "./context";
import { corsFor } from "./cors";
import { EXPORT_HEADERS, exportRouter } from "./export";
import { FanOut } from "./fanout";
import { internalErrorHandler } from "./graphql-http";
import { healthRoutes, type Readiness } from "./health";
import { HttpGateway } from "./http";
import { httpMetrics } from "./http-metrics";
import { createLimitChecker, type ListSizes } from "./limits";
import { webRouter } from "./static";
import { WsGateway } from "./ws-gateway";

export interface ServerDeps {
  config: Config;
  schema: GraphQLSchema;
  dataSource: DataSource;
  verifier: TokenVerifier;
  /** Named readiness checks for /readyz, each true when that part is ready. */
  readiness?: Readiness;
  /** The market's now, against which delays are measured (backed by the ingest watermark, or observed). */
  clock: MarketClock;
  /** The bus the live fields listen to; access-log entries are published on it. @default a new one */
  bus?: EventBus;
  /** The process's LISTEN connection (policy changes, events across replicas). @default one of its own */
  listener?: PgListener;
  /** What the ingest fields read. @default no ingest (status null), the database's quarantine */
  ingest?: IngestServices;
  /**
   * Field-level enforcement, entitlements, delays and the access log. Off only to measure their cost in
   * a benchmark; never switched from the environment. @default true
   */
  policy?: boolean;
}

export interface RunningServer {
  /** http://host:port/graphql */
  url: string;
  /** ws://host:port/graphql */
  wsUrl: string;
  port: number;
  /** Drains HTTP requests and WebSocket operations, then closes. */
  close(): Promise<void>;
}

/**
 * Fails at once, with one line naming it, when `port` is taken: checked before anything else starts
 * (Postgres, the feed, ingest), so a busy port never leaves them half started.
 */
export async function checkPortFree(port: number, host: string): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = netServer();
    probe.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "EADDRINUSE" || err.code === "EACCES"
          ? new ConfigError(
              `Port ${port} on ${host} is ${err.code === "EACCES" ? "not allowed" : "in use"}: stop what holds it, or choose another with --port (PORT).`,
            )
          : err,
      ),
    );
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

/** How often the sizes of lists returned whole are re-read for the cost limit, ms. */
const LIST_SIZES_MS = 30_000;

/** Where a server is in its life. */
type ServerState =
  | { phase: "starting" }
  | { phase: "listening"; port: number; host: string }
  | { phase: "stopping" }
  | { phase: "stopped" };

/**
 * The transport edge: GraphQL over HTTP (Apollo Server on express 5) and over WebSocket (graphql-ws) on
 * one port and path, with health, metrics and the web pages. Both transports share the schema, the
 * operation contexts, the limits, the access log and the error masking.
 */
export class Server implements RunningServer {
  private state: ServerState = { phase: "starting" };
  private readonly disposer = new Disposer();

  private constructor() {}

  /** Starts everything and listens on the configured port; on failure stops what it had started. */
  static async start(deps: ServerDeps): Promise<Server> {
    const server = new Server();
    try {
      await server.init(deps);
    } catch (err) {
      await server.disposer.dispose();
      throw err;
    }
    return server;
  }

  private listening() {
    if (this.state.phase !== "listening") throw new Error(`the server is ${this.state.phase}`);
    return this.state;
  }

  get port(): number {
    return this.listening().port;
  }

  get url(): string {
    const { host, port } = this.listening();
    return `http://${host}:${port}/graphql`;
  }

  get wsUrl(): string {
    const { host, port } = this.listening();
    return `ws://${host}:${port}/graphql`;
  }

  private async init(deps: ServerDeps): Promise<void> {
    const { config, dataSource, clock, verifier } = deps;
    const bus = deps.bus ?? createEventBus();
    let listener = deps.listener;
    if (!listener) {
      const own = (listener = await PgListener.start({ url: urlOf(dataSource) }));
      this.disposer.add("LISTEN connection", () => own.close());
    }
    const governance = await Governance.start({
      listener,
      dataSource,
      schema: deps.schema,
      clock,
      delaySeconds: config.delaySeconds,
      statementTimeoutMs: config.limits.statementTimeoutMs,
      auditKey: new AuditKey(Buffer.from(auditSecretOf(config))),
      checkpointFile: auditCheckpointFile(config),
      checkpointMs: config.auditCheckpointSeconds * 1000,
      onAccessLogged: (entry) => bus.publish(Topic.ACCESS_LOG, entry),
    });
    this.disposer.add("governance", () => governance.close());
    const audit = deps.policy !== false ? new AccessAudit(governance) : null;
    if (audit) this.disposer.add("access audit", () => audit.close());
    const schema = audit ? enforcePolicy(deps.schema, governance.fields) : deps.schema;

    // Lists returned whole cost their live size; the sizes are re-read now and then.
    const sizes: ListSizes = {
      ...(await readListSizes(sqlOf(dataSource))),
      fields: governance.fields.fields.length,
    };
    const sizesTimer = setInterval(() => {
      readListSizes(sqlOf(dataSource)).then(
        (read) => Object.assign(sizes, read),
        (err) => log.warn({ err }, "reading list sizes failed; the last ones stand"),
      );
    }, LIST_SIZES_MS).unref();
    this.disposer.add("list sizes", () => clearInterval(sizesTimer));
    const checkLimits = createLimitChecker(schema, config.limits, () => sizes);

    const contexts = new OperationContexts({
      config,
      dataSource,
      governance,
      audit,
      clock,
      bus,
      ingest: deps.ingest ?? { status: () => null, quarantine: new QuarantineRepo(dataSource) },
    });
    // Subscriptions run once per distinct operation and view; their events go straight to the sockets.
    const fanout = new FanOut({
      maxQueued: config.limits.subscriptionQueue,
      conflating: CONFLATING,
      maxPayloadBytes: config.limits.maxResponseBytes,
    });
    this.disposer.add("fan-out", () => fanout.close());

    const app = express();
    app.disable("x-powered-by");
    app.set("etag", false); // hashing every response body costs more than a GraphQL client ever saves
    app.use(httpMetrics);
    const httpServer: HttpServer = createServer(app);
    // Messages are limited like HTTP bodies: a larger one is refused (1009) as it arrives, never read whole.
    const wss = new WebSocketServer({
      server: httpServer,
      path: "/graphql",
      maxPayload: config.limits.maxRequestBytes,
    });
    const caps = new PrincipalCaps(config.limits);
    const ws = new WsGateway(wss, { config, schema, verifier, contexts, audit, checkLimits, fanout, caps });
    const listening = listener;
    app.use(
      healthRoutes(dataSource, async () => ({
        ...(await deps.readiness?.()),
        listener: listening.connected,
      })),
    );
    app.use(webRouter()); // the dashboard at /, the explorer at /explorer, the access log at /access-log
    // Preflights from the listed origins are answered here, before the routes (they need no log entry).
    const cors = corsFor(config.corsOrigins, Object.values(EXPORT_HEADERS));
    if (cors) app.use(["/graphql", "/export"], cors);
    const url = (dataSource.options as { url?: string }).url;
    if (!url) throw new Error("the server needs the data source's connection URL");
    const exports = new ExportsRepo(url, config.limits.maxExports);
    this.disposer.add("exports", () => exports.close());
    app.use("/export", exportRouter({ config, governance, audit, verifier, exports }));
    const http = await HttpGateway.start(
      app,
      httpServer,
      { config, schema, verifier, contexts, audit, checkLimits },
      () => ws.dispose(),
    );
    // Stopping Apollo drains HTTP requests, then the WebSocket connections, and closes the port.
    this.disposer.add("HTTP and WebSocket", () => http.stop());
    app.use(internalErrorHandler);

    await new Promise<void>((resolve, reject) => {
      httpServer.once("error", reject);
      httpServer.listen(config.port, config.host, () => resolve());
    });
    const { port } = httpServer.address() as AddressInfo;
    const host = config.host === "0.0.0.0" || config.host === "::" ? "localhost" : config.host;
    this.state = { phase: "listening", port, host };
  }

  /** Drains HTTP requests and WebSocket operations, then stops what the server started, newest first. */
  async close(): Promise<void> {
    if (this.state.phase === "stopped") return;
    this.state = { phase: "stopping" };
    await this.disposer.dispose();
    this.state = { phase: "stopped" };
  }
}
