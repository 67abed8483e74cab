import {
  getOperationAST,
  GraphQLError,
  OperationTypeNode,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type GraphQLSchema,
} from "graphql";
import type { Disposable, ServerOptions } from "graphql-ws";
import { LRUCache } from "lru-cache";
import type { WebSocket, WebSocketServer } from "ws";
import type { Config } from "../config/config";
import { setLongTimeout, type LongTimeout } from "../core/timers";
import { ClientError, ErrorCode } from "../errors";
import { graphqlOperations, graphqlOperationSeconds } from "../metrics";
import type { Principal } from "../policy/principal";
import { bearerToken, type TokenVerifier } from "../policy/tokens";
import type { Context } from "../resolvers/context.type";
import { originOf, type AccessAudit, type Origin } from "./access-audit";
import type { PrincipalCaps } from "./caps";
import type { OperationContexts } from "./context";
import { maskError, maskGraphQLError } from "./errors";
import { sharingKey, type FanOut, type Transport } from "./fanout";
import { MAX_BODY_DEPTH, nestsDeeperThan } from "./graphql-http";
import { noIntrospection } from "./introspection";
import type { LimitChecker } from "./limits";
import { tooLarge, withinBytes } from "./responses";
import { serveGraphqlWs, type WsExtra } from "./ws";

/** Close code for a connection over its principal's cap. */
export const TOO_MANY_CONNECTIONS = 4029;

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
  /** Each running operation's start, type and whether it answered an error (for its latency metric). */
  timings?: Map<string, { startedAt: number; type: string; failed: boolean }>;
};

/** Observes an operation's latency once it is over (answered, refused, or its stream ended). */
function observed(state: WsState, id: string, failed = false): void {
  const t = state.timings?.get(id);
  if (!t) return;
  state.timings!.delete(id);
  const labels = { transport: "ws", type: t.type, outcome: failed || t.failed ? "error" : "ok" };
  graphqlOperations.inc(labels);
  graphqlOperationSeconds.observe(labels, (performance.now() - t.startedAt) / 1000);
}

export interface WsGatewayDeps {
  config: Config;
  /** The schema as executed (with the policy wrappers). */
  schema: GraphQLSchema;
  verifier: TokenVerifier;
  contexts: OperationContexts;
  audit: AccessAudit | null;
  checkLimits: LimitChecker;
  fanout: FanOut;
  caps: PrincipalCaps;
}

/** Query texts whose parse and validation are kept, as Apollo's document store keeps them over HTTP. */
const DOCUMENTS = 1000;

/**
 * graphql-ws on the GraphQL path: connections authenticated once and capped per principal, every
 * operation validated, limited and logged exactly as over HTTP, subscriptions handed to the fan-out,
 * and every connection the server closes logged as a refusal.
 */
export class WsGateway {
  private readonly states = new WeakMap<WebSocket, WsState>();
  private readonly transports = new WeakMap<Context, Transport>();
  private readonly served: Disposable;
  /**
   * Each query text parsed and validated once: a screen's thousands of subscribers of one query share one
   * document (graphql-js never changes a document it is given) instead of holding a copy each.
   */
  private readonly documents = new LRUCache<
    string,
    { document: DocumentNode; invalid: readonly GraphQLError[] }
  >({ max: DOCUMENTS });

  constructor(
    wss: WebSocketServer,
    private readonly deps: WsGatewayDeps,
  ) {
    this.served = serveGraphqlWs<WsState>(wss, {
      extra: (socket, request) => {
        const state: WsState = { socket, request, openedAt: performance.now() };
        this.states.set(socket, state);
        return state;
      },
      // Every connection the server closes other than normally is a refusal: one access-log entry each.
      onServerClose: ({ code, socket, request }) => {
        const state = this.states.get(socket);
        void deps.audit?.logRefusal(
          state?.principal ?? null,
          state?.origin ?? originOf(request),
          {},
          `CLOSE_${code}`,
          state?.openedAt ?? performance.now(),
        );
      },
      server: this.options(),
    });
  }

  /** Closes every connection (1001) and the server. */
  dispose(): Promise<void> {
    return this.served.dispose() as Promise<void>;
  }

  /** Frees a subscription's place in its principal's caps (once, whichever way it ends). */
  private release(state: WsState, id: string): void {
    const cost = state.subscriptions?.get(id);
    if (cost === undefined || !state.principal) return;
    state.subscriptions!.delete(id);
    this.deps.caps.unsubscribe(state.principal.id, cost);
  }

  private options(): ServerOptions<Record<string, unknown>, WsState> {
    const { config, schema, verifier, contexts, audit, fanout, caps } = this.deps;
    const rules = config.introspection ? specifiedRules : [...specifiedRules, noIntrospection];
    return {
      schema,
      subscribe: (args) => fanout.subscribe(args, this.transports.get(args.contextValue as Context)!),
      onConnect: async (ctx) => {
        let principal: Principal;
        try {
          principal = await verifier.verify(bearerToken(ctx.connectionParams?.authorization));
        } catch {
          return false; // graphql-ws closes with 4403 Forbidden
        }
        ctx.extra.principal = principal;
        ctx.extra.origin = originOf(ctx.extra.request);
        if (!caps.connect(principal.id)) {
          const max = config.limits.maxConnectionsPerPrincipal;
          ctx.extra.socket.close(
            TOO_MANY_CONNECTIONS,
            `Too many connections: ${principal.id} has ${max} open (the cap)`.slice(0, 123),
          );
          return false;
        }
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
      onDisconnect: (ctx) => {
        ctx.extra.expiry?.clear();
      },
      onClose: (ctx) => {
        ctx.extra.expiry?.clear();
        for (const id of [...(ctx.extra.subscriptions?.keys() ?? [])]) this.release(ctx.extra, id);
        if (ctx.extra.counted) caps.disconnect(ctx.extra.principal!.id);
        ctx.extra.counted = false;
      },
      // Returning execution args makes graphql-ws skip validation, so the standard rules and the
      // limits run here: the WebSocket path refuses exactly what HTTP refuses.
      onSubscribe: async (ctx, id, payload): Promise<ExecutionArgs | readonly GraphQLError[]> => {
        const startedAt = performance.now();
        const principal = ctx.extra.principal!;
        const origin = ctx.extra.origin ?? { client: null, ip: null };
        (ctx.extra.timings ??= new Map()).set(id, { startedAt, type: "unknown", failed: false });
        // Refused before execution: logged like any other operation, and withheld if that fails.
        const refuse = async (errors: readonly GraphQLError[], document?: DocumentNode) => {
          observed(ctx.extra, id, true);
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
        let known = this.documents.get(payload.query);
        if (!known) {
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
          known = { document, invalid: validate(schema, document, rules) };
          this.documents.set(payload.query, known);
        }
        const { document, invalid } = known;
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
        ctx.extra.timings.get(id)!.type = operation.operation;
        const verdict = this.deps.checkLimits(
          document,
          payload.variables ?? undefined,
          payload.operationName,
        );
        if (verdict.errors.length) return refuse(verdict.errors, document);
        const subscription = operation.operation === OperationTypeNode.SUBSCRIPTION;
        if (subscription) {
          const refused = caps.subscribe(principal.id, verdict.cost);
          if (refused) return refuse([refused], document);
          (ctx.extra.subscriptions ??= new Map()).set(id, verdict.cost);
        }
        let contextValue: Context;
        try {
          contextValue = await contexts.create(principal, origin);
        } catch (err) {
          this.release(ctx.extra, id);
          observed(ctx.extra, id, true);
          // Thrown out of here, the message would close the socket as its reason: mask it instead.
          return [
            maskGraphQLError(new GraphQLError((err as Error).message, { originalError: err as Error })),
          ];
        }
        (ctx.extra.contexts ??= new Map()).set(id, contextValue);
        if (subscription) {
          this.transports.set(contextValue, {
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
      onOperation: async (_ctx, _id, payload, args, result) =>
        audit?.operation(args.contextValue as Context, payload, args.document, result),
      onNext: (ctx, id, _payload, args, result) => {
        // Single results of queries and mutations (subscription events are written by the fan-out).
        const timing = ctx.extra.timings?.get(id);
        if (timing && result.errors?.length) timing.failed = true;
        const masked = audit?.maskedOf(args.contextValue as Context);
        const sent =
          result.errors?.length || masked
            ? { ...result, ...masked, errors: result.errors?.map((e) => maskGraphQLError(e).toJSON()) }
            : result;
        const max = config.limits.maxResponseBytes;
        return withinBytes(JSON.stringify(sent), max) ? sent : tooLarge(max);
      },
      onComplete: async (ctx, id) => {
        observed(ctx.extra, id);
        const context = ctx.extra.contexts?.get(id);
        ctx.extra.contexts?.delete(id);
        this.release(ctx.extra, id);
        if (context) await audit?.completed(context);
      },
      onError: (ctx, id, _payload, errors) => {
        const timing = ctx.extra.timings?.get(id);
        if (timing) timing.failed = true;
        return errors.map((e) => maskError(e.toJSON(), e));
      },
    };
  }
}
