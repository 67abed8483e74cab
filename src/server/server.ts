import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ApolloServer, type ApolloServerPlugin } from "@apollo/server";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { ApolloServerPluginLandingPageDisabled } from "@apollo/server/plugin/disabled";
import { expressMiddleware } from "@as-integrations/express5";
import express from "express";
import {
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
import type { Config } from "../config/config";
import { MarketRepo } from "../db/market.repo";
import { ErrorCode } from "../errors";
import { log } from "../log";
import { graphqlOperations, registry } from "../metrics";
import type { Principal } from "../policy/principal";
import { bearerToken, type TokenVerifier } from "../policy/tokens";
import { createLoaders, type Context } from "../resolvers/context.type";
import { maskError, maskGraphQLError } from "./errors";
import { createLimitChecker } from "./limits";

export interface ServerDeps {
  config: Config;
  schema: GraphQLSchema;
  dataSource: DataSource;
  verifier: TokenVerifier;
  /** Named readiness checks for /readyz, each true when that part is ready. */
  readiness?: () => Promise<Record<string, boolean>>;
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
type WsState = { principal?: Principal; expiry?: NodeJS.Timeout };

/**
 * The transport edge: Apollo Server over express 5 and graphql-ws on one port and path, health and
 * metrics endpoints. Both transports share the schema, the context, the limits and the error masking.
 */
export async function startServer(deps: ServerDeps): Promise<RunningServer> {
  const { config, schema, verifier } = deps;
  const market = new MarketRepo(deps.dataSource);
  const checkLimits = createLimitChecker(schema, config.limits);
  const contextFor = (principal: Principal): Context => ({
    principal,
    config,
    market,
    loaders: createLoaders(market),
  });

  const app = express();
  app.disable("x-powered-by");
  const httpServer: Server = createServer(app);
  const wsServer = new WebSocketServer({ server: httpServer, path: "/graphql" });

  const ws: Disposable = useServer<Record<string, unknown>, WsState>(
    {
      schema,
      async onConnect(ctx) {
        try {
          const principal = await verifier.verify(bearerToken(ctx.connectionParams?.authorization));
          ctx.extra.principal = principal;
          if (principal.expiresAt) {
            const ms = principal.expiresAt * 1000 - Date.now();
            ctx.extra.expiry = setTimeout(
              () => ctx.extra.socket.close(4403, "Forbidden: token expired"),
              Math.max(ms, 0),
            );
          }
          return true;
        } catch {
          return false; // graphql-ws closes with 4403 Forbidden
        }
      },
      onDisconnect(ctx) {
        clearTimeout(ctx.extra.expiry);
      },
      onClose(ctx) {
        clearTimeout(ctx.extra.expiry);
      },
      // Returning execution args makes graphql-ws skip validation, so the standard rules and the
      // limits run here: the WebSocket path refuses exactly what HTTP refuses.
      onSubscribe(ctx, _id, payload): ExecutionArgs | readonly GraphQLError[] {
        let document: DocumentNode;
        try {
          document = parse(payload.query);
        } catch (err) {
          return [
            new GraphQLError((err as Error).message, {
              extensions: { code: ErrorCode.GRAPHQL_PARSE_FAILED },
            }),
          ];
        }
        const invalid = validate(schema, document, specifiedRules);
        if (invalid.length) {
          return invalid.map(
            (e) =>
              new GraphQLError(e.message, {
                nodes: e.nodes,
                extensions: { code: ErrorCode.GRAPHQL_VALIDATION_FAILED },
              }),
          );
        }
        const tooMuch = checkLimits(document, payload.variables ?? undefined, payload.operationName);
        if (tooMuch.length) return tooMuch;
        return {
          schema,
          document,
          variableValues: payload.variables,
          operationName: payload.operationName,
          contextValue: contextFor(ctx.extra.principal!),
        };
      },
      onNext(_ctx, _id, _payload, _args, result) {
        if (!result.errors?.length) return;
        return { ...result, errors: result.errors.map((e) => maskGraphQLError(e).toJSON()) };
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
        async didResolveOperation({ document, request }) {
          const errors = checkLimits(document, request.variables, request.operationName);
          if (errors.length) throw errors[0];
        },
      };
    },
  };

  const apollo = new ApolloServer<Context>({
    schema,
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
      limitsPlugin,
      metricsPlugin,
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
  app.use(
    "/graphql",
    express.json({ limit: "1mb" }),
    expressMiddleware(apollo, {
      context: async ({ req }) => contextFor(await verifier.verify(bearerToken(req.headers.authorization))),
    }),
  );

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
    close: () => apollo.stop(),
  };
}
