import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ApolloServer, type ApolloServerOptionsWithGateway, type ApolloServerPlugin } from "@apollo/server";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from "@apollo/server/plugin/disabled";
import { expressMiddleware } from "@as-integrations/express5";
import express from "express";
import {
  getOperationAST,
  GraphQLError,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type GraphQLSchema,
} from "graphql";
import type { Disposable } from "graphql-ws";
import { useServer } from "graphql-ws/use/ws";
import type { DataSource } from "typeorm";
import { WebSocketServer } from "ws";
import { auditCheckpointFile, auditSecretOf, type Config } from "../config/config";
import { MarketRepo } from "../db/market.repo";
import { WindowsRepo } from "../windows/windows.repo";
import { ClientError, ErrorCode, RateLimitedError } from "../errors";
import { createEventBus, Topic, type EventBus } from "../events/bus";
import { log } from "../log";
import { graphqlOperations, registry } from "../metrics";
import { AuditKey } from "../policy/audit";
import { enforcePolicy } from "../policy/enforce";
import { Governance } from "../policy/governance";
import { wallClock, type MarketClock } from "../policy/market-clock";
import type { Principal } from "../policy/principal";
import { bearerToken, type TokenVerifier } from "../policy/tokens";
import { createLoaders, type Context } from "../resolvers/context.type";
import { CONFLATING } from "../resolvers/live.resolver";
import { AccessAudit, originOf, type Origin } from "./access-audit";
import { maskError, maskGraphQLError } from "./errors";
import { createExecutor, type OperationExecutor } from "./execution";
import { FanOut, type Transport } from "./fanout";
import { createLimitChecker } from "./limits";
import { webRouter } from "./static";
import {
  allowGetAndPost,
  graphqlErrorHandler,
  graphqlStatus,
  internalErrorHandler,
  MAX_BODY_DEPTH,
  nestsDeeperThan,
  refuseDeepBodies,
  responseMediaType,
} from "./graphql-http";
import { setLongTimeout, type LongTimeout } from "../util/timers";

export interface ServerDeps {
  config: Config;
  schema: GraphQLSchema;
  dataSource: DataSource;
  verifier: TokenVerifier;
  /** Named readiness checks for /readyz, each true when that part is ready. */
  readiness?: () => Promise<Record<string, boolean>>;
  /** The market's now, against which delays are measured (e.g. backed by the ingest watermark). @default wall clock */
  clock?: MarketClock;
  /** The bus the schema's topic subscriptions listen to; access-log entries are published on it. @default a new one */
  bus?: EventBus;
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

/** Per-connection state kept on graphql-ws's `extra`. */
type WsState = {
  principal?: Principal;
  expiry?: LongTimeout;
  origin?: Origin;
  /** Each running operation's context, by operation id (its END entry needs it). */
  contexts?: Map<string, Context>;
  /** Ids of the running operations that are subscriptions (counted against the principal's cap). */
  subscriptions?: Set<string>;
  /** Counted against the principal's connection cap. */
  counted?: boolean;
};

/** Close code for a connection over its principal's cap. */
export const TOO_MANY_CONNECTIONS = 4029;

/**
 * The transport edge: Apollo Server over express 5 and graphql-ws on one port and path, health and
 * metrics endpoints. Both transports share the schema, the context, the limits and the error masking.
 */
export async function startServer(deps: ServerDeps): Promise<RunningServer> {
  const { config, verifier } = deps;
  const market = new MarketRepo(deps.dataSource);
  const windows = new WindowsRepo(deps.dataSource);
  const clock = deps.clock ?? wallClock;
  const bus = deps.bus ?? createEventBus();
  const policyOn = deps.policy !== false;
  const governance = await Governance.start({
    dataSource: deps.dataSource,
    schema: deps.schema,
    clock,
    delaySeconds: config.delaySeconds,
    statementTimeoutMs: config.limits.statementTimeoutMs,
    auditKey: new AuditKey(Buffer.from(auditSecretOf(config))),
    checkpointFile: auditCheckpointFile(config),
    checkpointMs: config.auditCheckpointSeconds * 1000,
    onAccessLogged: (entry) => bus.publish(Topic.ACCESS_LOG, entry),
  });
  const audit = policyOn ? new AccessAudit(governance) : null;
  const schema = policyOn ? enforcePolicy(deps.schema, governance.fields) : deps.schema;
  const checkLimits = createLimitChecker(schema, config.limits);
  const contextFor = async (principal: Principal, origin: Origin): Promise<Context> => {
    const policy = policyOn ? await governance.open(principal) : null;
    const ctx: Context = {
      principal,
      config,
      market,
      windows,
      governance,
      policy,
      clock,
      loaders: createLoaders(market, () => policy?.delayCutoff() ?? null),
    };
    audit?.track(ctx, origin);
    return ctx;
  };

  // Subscriptions run once per distinct operation and view; their events go straight to the sockets.
  const fanout = new FanOut({ maxQueued: config.limits.subscriptionQueue, conflating: CONFLATING });
  const transports = new WeakMap<Context, Transport>();
  const connections = new Map<string, number>();
  const subscriptions = new Map<string, number>();
  const count = (m: Map<string, number>, id: string, by: number) => {
    const n = (m.get(id) ?? 0) + by;
    if (n > 0) m.set(id, n);
    else m.delete(id);
  };

  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false); // hashing every response body costs more than a GraphQL client ever saves
  const httpServer: Server = createServer(app);
  const wsServer = new WebSocketServer({ server: httpServer, path: "/graphql" });

  const ws: Disposable = useServer<Record<string, unknown>, WsState>(
    {
      schema,
      subscribe: (args) => fanout.subscribe(args, transports.get(args.contextValue as Context)!),
      async onConnect(ctx) {
        let principal: Principal;
        try {
          principal = await verifier.verify(bearerToken(ctx.connectionParams?.authorization));
        } catch {
          return false; // graphql-ws closes with 4403 Forbidden
        }
        const max = config.limits.maxConnectionsPerPrincipal;
        if ((connections.get(principal.id) ?? 0) >= max) {
          ctx.extra.socket.close(
            TOO_MANY_CONNECTIONS,
            `Too many connections: ${principal.id} has ${max} open (the cap)`.slice(0, 123),
          );
          return false;
        }
        count(connections, principal.id, 1);
        ctx.extra.counted = true;
        ctx.extra.principal = principal;
        ctx.extra.origin = originOf(ctx.extra.request);
        if (principal.expiresAt) {
          const ms = principal.expiresAt * 1000 - Date.now();
          ctx.extra.expiry = setLongTimeout(
            () => ctx.extra.socket.close(4403, "Forbidden: token expired"),
            ms,
          );
        }
        return true;
      },
      onDisconnect(ctx) {
        ctx.extra.expiry?.clear();
      },
      onClose(ctx) {
        ctx.extra.expiry?.clear();
        if (ctx.extra.counted) count(connections, ctx.extra.principal!.id, -1);
        ctx.extra.counted = false;
      },
      // Returning execution args makes graphql-ws skip validation, so the standard rules and the
      // limits run here: the WebSocket path refuses exactly what HTTP refuses.
      async onSubscribe(ctx, id, payload): Promise<ExecutionArgs | readonly GraphQLError[]> {
        const startedAt = performance.now();
        const principal = ctx.extra.principal!;
        const origin = ctx.extra.origin ?? { client: null, ip: null };
        // Refused before execution: logged like any other operation, and withheld if that fails.
        const refuse = async (errors: readonly GraphQLError[], document?: DocumentNode) => {
          if (!audit) return errors;
          const sent = await audit.refused(principal, origin, payload, errors[0], startedAt, document);
          return sent === errors[0] ? errors : [sent];
        };
        // Before anything walks them recursively (cost keys, coercion): graphql-ws parsed the message only.
        if (
          nestsDeeperThan(payload.variables, MAX_BODY_DEPTH) ||
          nestsDeeperThan(payload.extensions, MAX_BODY_DEPTH)
        ) {
          return refuse([
            new ClientError(ErrorCode.BAD_REQUEST, `The request nests deeper than ${MAX_BODY_DEPTH} levels.`),
          ]);
        }
        let document: DocumentNode;
        try {
          document = parse(payload.query);
        } catch (err) {
          return refuse([
            new GraphQLError((err as Error).message, {
              extensions: { code: ErrorCode.GRAPHQL_PARSE_FAILED },
            }),
          ]);
        }
        const invalid = validate(schema, document, specifiedRules);
        if (invalid.length) {
          return refuse(
            invalid.map(
              (e) =>
                new GraphQLError(e.message, {
                  nodes: e.nodes,
                  extensions: { code: ErrorCode.GRAPHQL_VALIDATION_FAILED },
                }),
            ),
            document,
          );
        }
        const operation = getOperationAST(document, payload.operationName);
        if (!operation) {
          // graphql-ws would refuse it itself, before any hook that logs it.
          const named = payload.operationName ? `named "${payload.operationName}"` : "without a name";
          return refuse(
            [
              new ClientError(
                ErrorCode.OPERATION_RESOLUTION_FAILURE,
                `No operation ${named} in the document: name one of its operations.`,
              ),
            ],
            document,
          );
        }
        const tooMuch = checkLimits(document, payload.variables ?? undefined, payload.operationName);
        if (tooMuch.length) return refuse(tooMuch, document);
        const subscription = operation.operation === "subscription";
        const maxSubs = config.limits.maxSubscriptionsPerPrincipal;
        if (subscription && (subscriptions.get(principal.id) ?? 0) >= maxSubs) {
          return refuse(
            [
              new RateLimitedError(
                `Too many subscriptions: ${principal.id} has ${maxSubs} running (the cap). End one first.`,
                { limit: maxSubs },
              ),
            ],
            document,
          );
        }
        let contextValue: Context;
        try {
          contextValue = await contextFor(principal, origin);
        } catch (err) {
          // Thrown out of here, the message would close the socket as its reason: mask it instead.
          return [
            maskGraphQLError(new GraphQLError((err as Error).message, { originalError: err as Error })),
          ];
        }
        (ctx.extra.contexts ??= new Map()).set(id, contextValue);
        if (subscription) {
          (ctx.extra.subscriptions ??= new Set()).add(id);
          count(subscriptions, principal.id, 1);
          transports.set(contextValue, {
            socket: ctx.extra.socket,
            stream: ctx.extra.request.socket,
            multiplexed: () => (ctx.extra.subscriptions?.size ?? 0) > 1,
            id,
            operation: `${payload.operationName ?? ""}\n${JSON.stringify(payload.variables ?? {})}\n${payload.query}`,
          });
        }
        return {
          schema,
          document,
          variableValues: payload.variables,
          operationName: payload.operationName,
          contextValue,
        };
      },
      async onOperation(_ctx, _id, payload, args, result) {
        return audit?.operation(args.contextValue as Context, payload, args.document, result);
      },
      onNext(_ctx, _id, _payload, args, result) {
        const masked = audit?.maskedOf(args.contextValue as Context);
        if (!result.errors?.length && !masked) return;
        return {
          ...result,
          ...masked,
          errors: result.errors?.map((e) => maskGraphQLError(e).toJSON()),
        };
      },
      async onComplete(ctx, id) {
        const context = ctx.extra.contexts?.get(id);
        ctx.extra.contexts?.delete(id);
        if (ctx.extra.subscriptions?.delete(id)) count(subscriptions, ctx.extra.principal!.id, -1);
        if (context) await audit?.completed(context);
      },
      onError(_ctx, _id, _payload, errors) {
        return errors.map((e) => maskError(e.toJSON(), e));
      },
    },
    wsServer,
  );

  const metricsPlugin: ApolloServerPlugin<Context> = {
    async requestDidStart() {
      let type = "unknown";
      return {
        async didResolveOperation({ operation }) {
          type = operation?.operation ?? "unknown";
        },
        async willSendResponse({ response }) {
          const failed = response.body.kind === "single" && !!response.body.singleResult.errors?.length;
          graphqlOperations.inc({ transport: "http", type, outcome: failed ? "error" : "ok" });
        },
      };
    },
  };
  const limitsPlugin: ApolloServerPlugin<Context> = {
    async requestDidStart() {
      return {
        async didResolveOperation({ document, request, operation }) {
          if (operation?.operation === "subscription") {
            throw new ClientError(
              ErrorCode.BAD_REQUEST,
              "Subscriptions are served over WebSocket at this same URL (graphql-ws protocol), not over HTTP.",
            );
          }
          const errors = checkLimits(document, request.variables, request.operationName);
          if (errors.length) throw errors[0];
        },
        // The status the GraphQL-over-HTTP spec asks for (after every other plugin had its say).
        async willSendResponse({ response, request }) {
          if (response.body.kind !== "single" || !response.http) return;
          response.http.status = graphqlStatus({
            hasData: response.body.singleResult.data !== undefined,
            status: response.http.status,
            media: responseMediaType(request.http?.headers.get("accept")),
          });
        },
      };
    },
  };

  const apollo = new ApolloServer<Context>({
    // Apollo parses, validates, runs the plugins and formats errors; the operation itself runs on the
    // compiled executor, handed to Apollo through its one hook for a custom executor (the gateway).
    gateway: executingGateway(schema, createExecutor(schema)),
    // The platform owns shutdown (the CLI stops feed, ingest, server and database in order on a signal).
    stopOnTerminationSignals: false,
    // Client errors speak for themselves; internal ones are masked: no stack trace is ever useful to send.
    includeStacktraceInErrorResponses: false,
    formatError: maskError,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      {
        async serverWillStart() {
          return {
            async drainServer() {
              await ws.dispose();
            },
          };
        },
      },
      ApolloServerPluginLandingPageDisabled(),
      // Its per-field hook instruments every resolver; nothing here uses cache hints.
      ApolloServerPluginCacheControlDisabled(),
      limitsPlugin,
      metricsPlugin,
      ...(audit ? [audit.apolloPlugin()] : []),
    ],
  });
  await apollo.start();

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.get("/readyz", async (_req, res) => {
    const checks: Record<string, boolean> = { database: false };
    try {
      await deps.dataSource.query("SELECT 1");
      checks.database = true;
      checks.migrations = !(await deps.dataSource.showMigrations());
      Object.assign(checks, (await deps.readiness?.()) ?? {});
    } catch (err) {
      log.warn({ err }, "readiness check failed");
    }
    const ready = Object.values(checks).every(Boolean);
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "not ready", checks });
  });
  app.get("/metrics", async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  app.use(webRouter()); // the dashboard at /, the explorer at /explorer, the access log at /access-log
  app.use(
    "/graphql",
    allowGetAndPost,
    express.json({ limit: config.limits.maxRequestBytes }),
    refuseDeepBodies,
    expressMiddleware(apollo, {
      context: async ({ req }) => {
        const startedAt = performance.now();
        const origin = originOf(req);
        let principal: Principal;
        try {
          principal = await verifier.verify(bearerToken(req.headers.authorization));
        } catch (err) {
          throw audit
            ? await audit.refused(null, origin, req.body ?? {}, err as GraphQLError, startedAt)
            : err;
        }
        return contextFor(principal, origin);
      },
    }),
    graphqlErrorHandler,
  );
  app.use(internalErrorHandler);

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(config.port, config.host, () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;
  const host = config.host === "0.0.0.0" || config.host === "::" ? "localhost" : config.host;
  return {
    url: `http://${host}:${port}/graphql`,
    wsUrl: `ws://${host}:${port}/graphql`,
    port,
    close: async () => {
      await apollo.stop();
      fanout.close();
      await governance.close();
    },
  };
}

type Gateway = ApolloServerOptionsWithGateway<Context>["gateway"];
type GatewayExecutor = NonNullable<Awaited<ReturnType<Gateway["load"]>>["executor"]>;

/** A gateway serving one fixed schema, whose executor runs each operation on `executor`. */
function executingGateway(schema: GraphQLSchema, executor: OperationExecutor): Gateway {
  const execute: GatewayExecutor = (rc) =>
    executor({
      document: rc.document,
      operation: rc.operation,
      operationName: rc.request.operationName,
      variableValues: rc.request.variables,
      contextValue: rc.context,
    });
  return {
    onSchemaLoadOrUpdate(callback) {
      // The SDL is only read by Apollo's schema reporting to GraphOS, which this server does not use.
      callback({ apiSchema: schema, coreSupergraphSdl: "" });
      return () => {};
    },
    load: async () => ({ executor: execute }),
    stop: async () => {},
  };
}
