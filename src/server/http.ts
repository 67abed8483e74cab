import type { Server } from "node:http";
import {
  ApolloServer,
  HeaderMap,
  type ApolloServerOptionsWithGateway,
  type ApolloServerPlugin,
  type HTTPGraphQLRequest,
} from "@apollo/server";
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from "@apollo/server/plugin/disabled";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { expressMiddleware } from "@as-integrations/express5";
import express, { type Express, type NextFunction, type Request, type Response } from "express";
import { OperationTypeNode, type GraphQLSchema } from "graphql";
import type { Config } from "../config/config";
import { isRecord } from "../core/records";
import { ClientError, ErrorCode, QueryTooComplexError } from "../errors";
import { graphqlOperations, graphqlOperationSeconds } from "../metrics";
import type { Principal } from "../policy/principal";
import { bearerToken, type TokenVerifier } from "../policy/tokens";
import type { Context } from "../resolvers/context.type";
import { originOf, refusalCode, type AccessAudit, type RequestRecord } from "./access-audit";
import type { OperationContexts } from "./context";
import { createExecutor, type OperationExecutor } from "./execution";
import { maskError } from "./errors";
import {
  allowGetAndPost,
  explorerForBrowsers,
  graphqlErrorHandler,
  graphqlStatus,
  refuseDeepBodies,
  responseMediaType,
  sendRequestError,
} from "./graphql-http";
import { noIntrospection } from "./introspection";
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
    const budgets: BatchBudgets = new WeakMap();
    const apollo = new ApolloServer<Context>({
      // The operation itself runs on the compiled executor, handed to Apollo through its one hook for a
      // custom executor (the gateway).
      gateway: executingGateway(schema, createExecutor(schema)),
      // The platform owns shutdown (the CLI stops feed, ingest, server and database in order on a signal).
      stopOnTerminationSignals: false,
      // Client errors speak for themselves; internal ones are masked: no stack trace is ever useful to send.
      includeStacktraceInErrorResponses: false,
      formatError: maskError,
      // INTROSPECTION alone decides (Apollo's default turns it off under NODE_ENV=production, which breaks
      // the explorer and BI tools' schema discovery); the same rule refuses it on the WebSocket.
      introspection: true,
      validationRules: config.introspection ? [] : [noIntrospection],
      // A request carrying a bearer token cannot be a cross-site forgery: the header forces a browser to
      // preflight it, which CORS then answers. So queries by GET work for any client sending one (urql's
      // default); mutations never run by GET (405).
      csrfPrevention: {
        requestHeaders: ["authorization", "x-apollo-operation-name", "apollo-require-preflight"],
      },
      plugins: [
        ApolloServerPluginDrainHttpServer({ httpServer }),
        { serverWillStart: async () => ({ drainServer: drain }) },
        ApolloServerPluginLandingPageDisabled(),
        // Its per-field hook instruments every resolver; nothing here uses cache hints.
        ApolloServerPluginCacheControlDisabled(),
        limitsPlugin(checkLimits, budgets, config.limits.maxBatchCost),
        metricsPlugin,
        responsePlugin(responses, audit, budgets),
      ],
      stringifyResult: responses.stringify,
    });
    await apollo.start();

    app.get("/graphql", explorerForBrowsers);
    app.use(
      "/graphql",
      refusalsLogged(audit, verifier),
      allowGetAndPost,
      express.json({ limit: config.limits.maxRequestBytes }),
      refuseDeepBodies,
      batches(apollo, deps, budgets),
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
        const body: unknown = req.body;
        const code = refusalCode(res.statusCode, record.body);
        await audit.logRefusal(principal, record.origin, isRecord(body) ? body : {}, code, record.startedAt);
      })();
    });
    next();
  };
}

/** What is left to the operations of one batch, shared by them (they run one after another). */
interface BatchBudget {
  cost: number;
  bytes: number;
}

/** The budget of each operation of a batch, by its HTTP request (which Apollo hands its plugins). */
type BatchBudgets = WeakMap<HTTPGraphQLRequest, BatchBudget>;

/**
 * Batched requests (a JSON array of operations, as Apollo Client's BatchHttpLink sends them), up to
 * MAX_BATCH_SIZE. The caller is authenticated once; then each operation runs in order as a request of
 * its own: its own context, limits, cost and access-log entry (a refusal's when it did not reach
 * execution). Together they may cost at most MAX_BATCH_COST and answer at most MAX_RESPONSE_BYTES. The
 * batch answers 200 with one result per operation, each with its own errors; a batch refused whole
 * (empty, too large, no valid token) is one refusal.
 *
 * Apollo's own batching is not used: it shares one context among the operations of a batch, so their
 * policy decisions and access-log entries would be mixed.
 */
function batches(apollo: ApolloServer<Context>, deps: HttpGatewayDeps, budgets: BatchBudgets) {
  const { config, verifier, contexts, audit } = deps;
  const { maxBatchSize, maxBatchCost, maxResponseBytes } = config.limits;
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    if (req.method !== "POST" || !Array.isArray(req.body)) return next();
    const operations = req.body as unknown[];
    if (operations.length === 0 || operations.length > maxBatchSize) {
      const held = operations.length ? `this one holds ${operations.length}` : "this one holds none";
      return sendRequestError(
        req,
        res,
        400,
        `A batch holds 1 to ${maxBatchSize} operations (MAX_BATCH_SIZE); ${held}.`,
      );
    }
    let principal: Principal;
    try {
      principal = await verifier.verify(bearerToken(req.headers.authorization));
    } catch (err) {
      return sendRequestError(req, res, 401, (err as Error).message, ErrorCode.UNAUTHENTICATED);
    }
    const origin = originOf(req);
    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers))
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(", ") : value);
    const budget: BatchBudget = { cost: maxBatchCost, bytes: maxResponseBytes };
    const results: string[] = [];
    for (const operation of operations) {
      const record: RequestRecord = { origin, startedAt: performance.now(), logged: false };
      const request: HTTPGraphQLRequest = { method: "POST", headers, search: "", body: operation };
      budgets.set(request, budget);
      const response = await apollo.executeHTTPGraphQLRequest({
        httpGraphQLRequest: request,
        context: () => contexts.create(principal, origin, record),
      });
      const body =
        response.body.kind === "complete"
          ? response.body.string
          : JSON.stringify({
              errors: [
                {
                  message: "Incremental delivery is not supported in a batch.",
                  extensions: { code: ErrorCode.BAD_REQUEST },
                },
              ],
            });
      if (audit && !record.logged) {
        // Refused before Apollo's pipeline (not an object, bad parameters): no plugin saw it.
        record.logged = true;
        const fields = typeof operation === "object" && operation !== null ? operation : {};
        const code = refusalCode(response.status ?? 400, body);
        await audit.logRefusal(principal, origin, fields, code, record.startedAt);
      }
      budget.bytes -= Buffer.byteLength(body);
      results.push(body);
    }
    const request = res.locals.request as RequestRecord | undefined;
    if (request) request.logged = true; // each operation has its entry
    res
      .status(200)
      .type(responseMediaType(req.headers.accept))
      .send(`[${results.join(",")}]`);
  };
}

/**
 * Subscriptions are refused over HTTP; depth, aliases and cost are checked before execution, and an
 * operation of a batch is charged to what is left of its batch's cost.
 */
function limitsPlugin(
  checkLimits: LimitChecker,
  budgets: BatchBudgets,
  maxBatchCost: number,
): ApolloServerPlugin<Context> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ document, request, operation }) {
          if (operation?.operation === OperationTypeNode.SUBSCRIPTION) {
            throw new ClientError(
              ErrorCode.BAD_REQUEST,
              "Subscriptions are served over WebSocket at this same URL (graphql-ws protocol), not over HTTP.",
            );
          }
          const { errors, cost } = checkLimits(document, request.variables, request.operationName);
          if (errors.length) throw errors[0];
          const budget = request.http && budgets.get(request.http);
          if (!budget) return;
          if (cost > budget.cost) {
            throw new QueryTooComplexError(
              `Query cost ${cost} exceeds what is left (${budget.cost}) of the batch's limit of ${maxBatchCost} (MAX_BATCH_COST): send it in another request.`,
            );
          }
          budget.cost -= cost;
        },
      };
    },
  };
}

const metricsPlugin: ApolloServerPlugin<Context> = {
  async requestDidStart() {
    const done = graphqlOperationSeconds.startTimer({ transport: "http" });
    let type = "unknown";
    return {
      async didResolveOperation({ operation }) {
        type = operation?.operation ?? "unknown";
      },
      async willSendResponse({ response }) {
        const failed = response.body.kind === "single" && !!response.body.singleResult.errors?.length;
        const outcome = failed ? "error" : "ok";
        graphqlOperations.inc({ transport: "http", type, outcome });
        done({ type, outcome });
      },
    };
  },
};

/**
 * What a response goes through before it leaves, in this order: masked coordinates listed, the size
 * cap, the access-log entry (which sees what is sent), and the status the GraphQL-over-HTTP spec asks.
 */
function responsePlugin(
  responses: ResponseBytes,
  audit: AccessAudit | null,
  budgets: BatchBudgets,
): ApolloServerPlugin<Context> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse(rc) {
          const { response, request, contextValue } = rc;
          if (response.body.kind !== "single") return;
          audit?.addMasked(contextValue, response.body.singleResult);
          const budget = request.http && budgets.get(request.http);
          const capped = responses.cap(response.body.singleResult, budget?.bytes);
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
