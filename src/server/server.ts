import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ApolloServer, type ApolloServerOptionsWithGateway, type ApolloServerPlugin } from "@apollo/server";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from "@apollo/server/plugin/disabled";
import { expressMiddleware } from "@as-integrations/express5";
import express, { type NextFunction, type Request, type Response } from "express";
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
import type { DataSource } from "typeorm";
import { WebSocketServer, type WebSocket } from "ws";
import { auditCheckpointFile, auditSecretOf, type Config } from "../config/config";
import { MarketRepo } from "../db/market.repo";
import { QuarantineRepo } from "../db/quarantine.repo";
import { readListSizes } from "../db/sizes";
import { sqlOf } from "../db/sql";
import { WindowsRepo } from "../windows/windows.repo";
import { ClientError, ErrorCode, RateLimitedError } from "../errors";
import { createEventBus, Topic, type EventBus } from "../events/bus";
import { log } from "../log";
import { graphqlOperations, registry } from "../metrics";
import { AuditKey } from "../policy/audit";
import { enforcePolicy } from "../schema/enforce";
import { Governance } from "../policy/governance";
import type { MarketClock } from "../core/market-clock";
import type { Principal } from "../policy/principal";
import { bearerToken, type TokenVerifier } from "../policy/tokens";
import { createLoaders, type Context, type IngestServices } from "../resolvers/context.type";
import { CONFLATING } from "../resolvers/live.resolver";
import { AccessAudit, originOf, refusalCode, type Origin, type RequestRecord } from "./access-audit";
import { maskError, maskGraphQLError } from "./errors";
import { createExecutor, type OperationExecutor } from "./execution";
import { FanOut, sharingKey, type Transport } from "./fanout";
import { createLimitChecker, type ListSizes } from "./limits";
import { webRouter } from "./static";
import { ResponseBytes, tooLarge, withinBytes } from "./responses";
import { serveGraphqlWs, type WsExtra } from "./ws";
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
import { setLongTimeout, type LongTimeout } from "../core/timers";

export interface ServerDeps {
  config: Config;
  schema: GraphQLSchema;
  dataSource: DataSource;
  verifier: TokenVerifier;
  /** Named readiness checks for /readyz, each true when that part is ready. */
  readiness?: () => Promise<Record<string, boolean>>;
  /** The market's now, against which delays are measured (backed by the ingest watermark, or observed). */
  clock: MarketClock;
  /** The bus the live fields listen to; access-log entries are published on it. @default a new one */
  bus?: EventBus;
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

/** Per-connection state kept on graphql-ws's `extra`. */
type WsState = WsExtra & {
  /** When the connection opened (a refused connection's entry measures from it). */
  openedAt: number;
  principal?: Principal;
  expiry?: LongTimeout;
  origin?: Origin;
  /** Each running operation's context, by operation id (its END entry needs it). */
  contexts?: Map<string, Context>;
  /** The running subscriptions, by operation id, with their cost (counted against the principal's caps). */
  subscriptions?: Map<string, number>;
  /** Counted against the principal's connection cap. */
  counted?: boolean;
};

/** How often the sizes of lists returned whole are re-read for the cost limit, ms. */
const LIST_SIZES_MS = 30_000;

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
  const { clock } = deps;
  const bus = deps.bus ?? createEventBus();
  const ingest = deps.ingest ?? { status: () => null, quarantine: new QuarantineRepo(deps.dataSource) };
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
  // Lists returned whole cost their live size; the sizes are re-read now and then.
  const sizes: ListSizes = {
    ...(await readListSizes(sqlOf(deps.dataSource))),
    fields: governance.fields.fields.length,
  };
  const sizesTimer = setInterval(() => {
    readListSizes(sqlOf(deps.dataSource)).then(
      (read) => Object.assign(sizes, read),
      (err) => log.warn({ err }, "reading list sizes failed; the last ones stand"),
    );
  }, LIST_SIZES_MS).unref();
  const checkLimits = createLimitChecker(schema, config.limits, () => sizes);
  const contextFor = async (
    principal: Principal,
    origin: Origin,
    request?: RequestRecord,
  ): Promise<Context> => {
    const policy = policyOn ? await governance.open(principal) : null;
    const ctx: Context = {
      principal,
      config,
      market,
      windows,
      governance,
      policy,
      clock,
      bus,
      ingest,
      loaders: createLoaders(market, () => policy?.delayCutoff() ?? null),
    };
    audit?.track(ctx, origin, request);
    return ctx;
  };

  // Subscriptions run once per distinct operation and view; their events go straight to the sockets.
  const fanout = new FanOut({
    maxQueued: config.limits.subscriptionQueue,
    conflating: CONFLATING,
    maxPayloadBytes: config.limits.maxResponseBytes,
  });
  const transports = new WeakMap<Context, Transport>();
  const connections = new Map<string, number>();
  const subscriptions = new Map<string, number>();
  const subscriptionCosts = new Map<string, number>();
  /** Frees a subscription's place in its principal's caps (once, whichever way it ends). */
  const release = (state: WsState, id: string): void => {
    const cost = state.subscriptions?.get(id);
    if (cost === undefined || !state.principal) return;
    state.subscriptions!.delete(id);
    count(subscriptions, state.principal.id, -1);
    count(subscriptionCosts, state.principal.id, -cost);
  };
  /** Why one more subscription of `cost` would exceed the principal's caps, or null when it fits. */
  const overCaps = (principal: string, cost: number): RateLimitedError | null => {
    const { maxSubscriptionsPerPrincipal: maxSubs, maxSubscriptionCost: budget } = config.limits;
    if ((subscriptions.get(principal) ?? 0) >= maxSubs) {
      return new RateLimitedError(
        `Too many subscriptions: ${principal} has ${maxSubs} running (the cap). End one first.`,
        { limit: maxSubs },
      );
    }
    const running = subscriptionCosts.get(principal) ?? 0;
    if (running + cost > budget) {
      return new RateLimitedError(
        `Subscription budget exceeded: ${principal}'s running subscriptions cost ${running}, this one ${cost}, the budget is ${budget}. End one, or ask for fewer symbols or fields.`,
        { limit: budget, cost },
      );
    }
    return null;
  };
  const count = (m: Map<string, number>, id: string, by: number) => {
    const n = (m.get(id) ?? 0) + by;
    if (n > 0) m.set(id, n);
    else m.delete(id);
  };

  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false); // hashing every response body costs more than a GraphQL client ever saves
  const httpServer: Server = createServer(app);
  // Messages are limited like HTTP bodies: a larger one is refused (1009) as it arrives, never read whole.
  const wsServer = new WebSocketServer({
    server: httpServer,
    path: "/graphql",
    maxPayload: config.limits.maxRequestBytes,
  });
  const connectionStates = new WeakMap<WebSocket, WsState>();

  const ws: Disposable = serveGraphqlWs<WsState>(wsServer, {
    extra: (socket, request) => {
      const state: WsState = { socket, request, openedAt: performance.now() };
      connectionStates.set(socket, state);
      return state;
    },
    // Every connection the server closes other than normally is a refusal: one access-log entry each.
    onServerClose: ({ code, socket, request }) => {
      const state = connectionStates.get(socket);
      void audit?.logRefusal(
        state?.principal ?? null,
        state?.origin ?? originOf(request),
        {},
        `CLOSE_${code}`,
        state?.openedAt ?? performance.now(),
      );
    },
    server: {
      schema,
      subscribe: (args) => fanout.subscribe(args, transports.get(args.contextValue as Context)!),
      async onConnect(ctx) {
        let principal: Principal;
        try {
          principal = await verifier.verify(bearerToken(ctx.connectionParams?.authorization));
        } catch {
          return false; // graphql-ws closes with 4403 Forbidden
        }
        ctx.extra.principal = principal;
        ctx.extra.origin = originOf(ctx.extra.request);
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
        for (const id of [...(ctx.extra.subscriptions?.keys() ?? [])]) release(ctx.extra, id);
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
        const verdict = checkLimits(document, payload.variables ?? undefined, payload.operationName);
        if (verdict.errors.length) return refuse(verdict.errors, document);
        const subscription = operation.operation === "subscription";
        if (subscription) {
          // Checked and taken in one synchronous step: a burst of subscribes cannot all pass the check
          // before any of them counts.
          const refused = overCaps(principal.id, verdict.cost);
          if (refused) return refuse([refused], document);
          (ctx.extra.subscriptions ??= new Map()).set(id, verdict.cost);
          count(subscriptions, principal.id, 1);
          count(subscriptionCosts, principal.id, verdict.cost);
        }
        let contextValue: Context;
        try {
          contextValue = await contextFor(principal, origin);
        } catch (err) {
          release(ctx.extra, id);
          // Thrown out of here, the message would close the socket as its reason: mask it instead.
          return [
            maskGraphQLError(new GraphQLError((err as Error).message, { originalError: err as Error })),
          ];
        }
        (ctx.extra.contexts ??= new Map()).set(id, contextValue);
        if (subscription) {
          transports.set(contextValue, {
            socket: ctx.extra.socket,
            stream: ctx.extra.request.socket,
            multiplexed: () => (ctx.extra.subscriptions?.size ?? 0) > 1,
            id,
            operation: sharingKey(document, operation, payload.variables),
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
        // Single results of queries and mutations (subscription events are written by the fan-out).
        const masked = audit?.maskedOf(args.contextValue as Context);
        const sent =
          result.errors?.length || masked
            ? { ...result, ...masked, errors: result.errors?.map((e) => maskGraphQLError(e).toJSON()) }
            : result;
        const max = config.limits.maxResponseBytes;
        return withinBytes(JSON.stringify(sent), max) ? sent : tooLarge(max);
      },
      async onComplete(ctx, id) {
        const context = ctx.extra.contexts?.get(id);
        ctx.extra.contexts?.delete(id);
        release(ctx.extra, id);
        if (context) await audit?.completed(context);
      },
      onError(_ctx, _id, _payload, errors) {
        return errors.map((e) => maskError(e.toJSON(), e));
      },
    },
  });

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
          const { errors } = checkLimits(document, request.variables, request.operationName);
          if (errors.length) throw errors[0];
        },
      };
    },
  };
  // What a response goes through before it leaves, in this order: masked coordinates listed, the size
  // cap, the access-log entry (which sees what is sent), and the status the GraphQL-over-HTTP spec asks.
  const responses = new ResponseBytes(config.limits.maxResponseBytes);
  const responsePlugin: ApolloServerPlugin<Context> = {
    async requestDidStart() {
      return {
        async willSendResponse(rc) {
          const { response, request, contextValue } = rc;
          if (response.body.kind !== "single") return;
          if (audit) audit.addMasked(contextValue, response.body.singleResult);
          const capped = responses.cap(response.body.singleResult);
          if (capped) response.body.singleResult = capped;
          await audit?.logHttp(rc);
          if (response.http) {
            response.http.status = graphqlStatus({
              hasData: response.body.singleResult.data !== undefined,
              status: response.http.status,
              media: responseMediaType(request.http?.headers.get("accept")),
            });
          }
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
      responsePlugin,
    ],
    stringifyResult: responses.stringify,
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
  /**
   * Every request on the GraphQL route ends with an access-log entry: its operation's, written by the
   * audit plugin, or else, once the response is sent, one for the refusal (by method, body, CSRF
   * prevention, batching, parameters or authentication), anonymous ones aggregated.
   */
  const refusalsLogged = (req: Request, res: Response, next: NextFunction): void => {
    if (!audit) return next();
    const record: RequestRecord = { origin: originOf(req), startedAt: performance.now(), logged: false };
    res.locals.request = record;
    const send = res.send.bind(res);
    res.send = (body?: unknown) => {
      if (!record.logged) record.body = body;
      return send(body);
    };
    res.on("finish", () => {
      if (record.logged) return;
      record.logged = true;
      void (async () => {
        const principal = await verifier.verify(bearerToken(req.headers.authorization)).catch(() => null);
        const body = (typeof req.body === "object" && req.body) || {};
        await audit.logRefusal(
          principal,
          record.origin,
          body,
          refusalCode(res.statusCode, record.body),
          record.startedAt,
        );
      })();
    });
    next();
  };
  app.use(
    "/graphql",
    refusalsLogged,
    allowGetAndPost,
    express.json({ limit: config.limits.maxRequestBytes }),
    refuseDeepBodies,
    expressMiddleware(apollo, {
      context: async ({ req, res }) => {
        const principal = await verifier.verify(bearerToken(req.headers.authorization));
        return contextFor(principal, originOf(req), res.locals.request as RequestRecord | undefined);
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
      clearInterval(sizesTimer);
      await apollo.stop();
      fanout.close();
      await audit?.close();
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
