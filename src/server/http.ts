import type { Server } from "node:http";
import { ApolloServer, type ApolloServerOptionsWithGateway, type ApolloServerPlugin } from "@apollo/server";
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from "@apollo/server/plugin/disabled";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { expressMiddleware } from "@as-integrations/express5";
import express, { type Express, type NextFunction, type Request, type Response } from "express";
import type { GraphQLSchema } from "graphql";
import type { Config } from "../config/config";
import { ClientError, ErrorCode } from "../errors";
import { graphqlOperations } from "../metrics";
import { bearerToken, type TokenVerifier } from "../policy/tokens";
import type { Context } from "../resolvers/context.type";
import { originOf, refusalCode, type AccessAudit, type RequestRecord } from "./access-audit";
import type { OperationContexts } from "./context";
import { createExecutor, type OperationExecutor } from "./execution";
import { maskError } from "./errors";
import {
  allowGetAndPost,
  graphqlErrorHandler,
  graphqlStatus,
  refuseDeepBodies,
  responseMediaType,
} from "./graphql-http";
import type { LimitChecker } from "./limits";
import { ResponseBytes } from "./responses";

export interface HttpGatewayDeps {
  config: Config;
  /** The schema as executed (with the policy wrappers). */
  schema: GraphQLSchema;
  verifier: TokenVerifier;
  contexts: OperationContexts;
  audit: AccessAudit | null;
  checkLimits: LimitChecker;
}

/**
 * GraphQL over HTTP at `/graphql`: Apollo Server parses, validates, runs the plugins and formats errors;
 * operations run compiled; every request ends with one access-log entry (its operation's, or its
 * refusal's); statuses follow the GraphQL-over-HTTP spec.
 */
export class HttpGateway {
  private constructor(private readonly apollo: ApolloServer<Context>) {}

  /** Starts Apollo (draining `httpServer` and then `drain` at stop) and mounts the route on `app`. */
  static async start(
    app: Express,
    httpServer: Server,
    deps: HttpGatewayDeps,
    drain: () => Promise<void>,
  ): Promise<HttpGateway> {
    const { config, schema, audit, checkLimits, verifier, contexts } = deps;
    const responses = new ResponseBytes(config.limits.maxResponseBytes);
    const apollo = new ApolloServer<Context>({
      // The operation itself runs on the compiled executor, handed to Apollo through its one hook for a
      // custom executor (the gateway).
      gateway: executingGateway(schema, createExecutor(schema)),
      // The platform owns shutdown (the CLI stops feed, ingest, server and database in order on a signal).
      stopOnTerminationSignals: false,
      // Client errors speak for themselves; internal ones are masked: no stack trace is ever useful to send.
      includeStacktraceInErrorResponses: false,
      formatError: maskError,
      plugins: [
        ApolloServerPluginDrainHttpServer({ httpServer }),
        { serverWillStart: async () => ({ drainServer: drain }) },
        ApolloServerPluginLandingPageDisabled(),
        // Its per-field hook instruments every resolver; nothing here uses cache hints.
        ApolloServerPluginCacheControlDisabled(),
        limitsPlugin(checkLimits),
        metricsPlugin,
        responsePlugin(responses, audit),
      ],
      stringifyResult: responses.stringify,
    });
    await apollo.start();

    app.use(
      "/graphql",
      refusalsLogged(audit, verifier),
      allowGetAndPost,
      express.json({ limit: config.limits.maxRequestBytes }),
      refuseDeepBodies,
      expressMiddleware(apollo, {
        context: async ({ req, res }) => {
          const principal = await verifier.verify(bearerToken(req.headers.authorization));
          return contexts.create(principal, originOf(req), res.locals.request as RequestRecord | undefined);
        },
      }),
      graphqlErrorHandler,
    );
    return new HttpGateway(apollo);
  }

  /** Drains HTTP requests (and what `drain` stops), then stops Apollo. */
  stop(): Promise<void> {
    return this.apollo.stop();
  }
}

/**
 * Every request on the GraphQL route ends with an access-log entry: its operation's, written by the
 * response plugin, or else, once the response is sent, one for the refusal (by method, body, CSRF
 * prevention, batching, parameters or authentication), anonymous ones aggregated.
 */
function refusalsLogged(audit: AccessAudit | null, verifier: TokenVerifier) {
  return (req: Request, res: Response, next: NextFunction): void => {
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
        const code = refusalCode(res.statusCode, record.body);
        await audit.logRefusal(principal, record.origin, body, code, record.startedAt);
      })();
    });
    next();
  };
}

/** Subscriptions are refused over HTTP; depth, aliases and cost are checked before execution. */
function limitsPlugin(checkLimits: LimitChecker): ApolloServerPlugin<Context> {
  return {
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
}

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

/**
 * What a response goes through before it leaves, in this order: masked coordinates listed, the size
 * cap, the access-log entry (which sees what is sent), and the status the GraphQL-over-HTTP spec asks.
 */
function responsePlugin(responses: ResponseBytes, audit: AccessAudit | null): ApolloServerPlugin<Context> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse(rc) {
          const { response, request, contextValue } = rc;
          if (response.body.kind !== "single") return;
          audit?.addMasked(contextValue, response.body.singleResult);
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
