import type { IncomingMessage } from "node:http";
import type { ApolloServerPlugin } from "@apollo/server";
import type { DocumentNode, ExecutionResult, FormattedExecutionResult, GraphQLError } from "graphql";
import { ErrorCode } from "../errors";
import { log } from "../log";
import {
  AuditUnavailableError,
  describeOperation,
  sorted,
  type Governance,
  type OperationMeta,
} from "../policy/governance";
import type { Principal } from "../policy/principal";
import type { Context } from "../resolvers/context.type";

/** Who sent a request: the client's name (Apollo's header, else the user agent) and address. */
export interface Origin {
  client: string | null;
  ip: string | null;
}

export function originOf(req: IncomingMessage): Origin {
  const header = (name: string) => {
    const v = req.headers[name];
    return (Array.isArray(v) ? v[0] : v)?.slice(0, 200) || null;
  };
  return {
    client: header("apollographql-client-name") ?? header("user-agent"),
    ip: req.socket.remoteAddress ?? null,
  };
}

const codeOf = (errors: readonly { extensions?: Record<string, unknown> }[] | undefined): string | null =>
  (errors?.[0]?.extensions?.code as string | undefined) ?? null;

/** An operation between its start and its access-log entry. */
interface Tracked {
  origin: Origin;
  startedAt: number;
  meta?: OperationMeta;
  /** A subscription whose START entry is written: its END entry is owed. */
  streaming?: boolean;
}

/**
 * Writes the access log from both transports: one entry per operation, two per subscription (START and
 * END). Responses wait for their entry to be committed; when it cannot be, they are replaced by
 * AUDIT_UNAVAILABLE (fail closed). Also lists masked coordinates under `extensions.masked`.
 */
export class AccessAudit {
  // Keyed by the policy session: Apollo hands plugins a shallow clone of the context, which shares it.
  private readonly tracked = new WeakMap<object, Tracked>();

  constructor(private readonly governance: Governance) {}

  /** Starts tracking an operation's context (called when the context is created). */
  track(ctx: Context, origin: Origin): void {
    if (ctx.policy) this.tracked.set(ctx.policy, { origin, startedAt: ctx.policy.startedAt });
  }

  /**
   * Logs an operation refused before it had a context (authentication failed, or parse, validation or
   * limits on the WebSocket path). Resolves with the error to send: the original, or AUDIT_UNAVAILABLE.
   */
  async refused<E>(
    principal: Principal | null,
    origin: Origin,
    request: { query?: string; operationName?: string | null },
    error: E & { extensions?: Record<string, unknown> },
    startedAt: number,
    document?: DocumentNode,
  ): Promise<E | AuditUnavailableError> {
    const meta = describeOperation(request.query, request.operationName, origin, document);
    const entry = this.governance.entry(
      meta,
      principal,
      null,
      { errorCode: codeOf([error]), executed: false, rowCount: null },
      startedAt,
    );
    try {
      await this.governance.log(entry);
      return error;
    } catch (err) {
      return err as AuditUnavailableError;
    }
  }

  /** The Apollo plugin: logs each HTTP operation before its response leaves, and adds `extensions.masked`. */
  apolloPlugin(): ApolloServerPlugin<Context> {
    return {
      requestDidStart: async () => ({
        willSendResponse: async ({ contextValue, request, response, document }) => {
          const t = contextValue.policy && this.tracked.get(contextValue.policy);
          if (!t || response.body.kind !== "single") return;
          const result = response.body.singleResult;
          const s = contextValue.policy;
          if (s?.masked.size) result.extensions = { ...result.extensions, masked: sorted(s.masked) };
          const meta = describeOperation(request.query, request.operationName, t.origin, document);
          const entry = this.governance.entry(
            meta,
            contextValue.principal,
            s,
            { errorCode: codeOf(result.errors), executed: result.data !== undefined },
            t.startedAt,
          );
          try {
            await this.governance.log(entry);
          } catch (err) {
            const e = err as AuditUnavailableError;
            response.body.singleResult = {
              errors: [{ message: e.message, extensions: { code: e.extensions.code } }],
            };
            if (response.http) response.http.status = 503;
          }
        },
      }),
    };
  }

  /**
   * graphql-ws `onOperation`: a query's or mutation's single result waits for its entry (replaced by
   * AUDIT_UNAVAILABLE if that fails); a subscription's stream starts only once its START entry is in.
   */
  async operation(
    ctx: Context,
    payload: { query?: string; operationName?: string | null },
    document: DocumentNode,
    operationResult: unknown,
  ): Promise<ExecutionResult | void> {
    const t = ctx.policy && this.tracked.get(ctx.policy);
    if (!t) return;
    const result = (await operationResult) as ExecutionResult | AsyncIterable<unknown>;
    t.meta = describeOperation(payload.query, payload.operationName, t.origin, document);
    const streaming = typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function";
    const single = result as ExecutionResult;
    const entry = this.governance.entry(
      t.meta,
      ctx.principal,
      ctx.policy,
      streaming
        ? { errorCode: null, executed: true, phase: "START", rowCount: null }
        : { errorCode: codeOf(single.errors), executed: single.data !== undefined },
      t.startedAt,
    );
    try {
      await this.governance.log(entry);
    } catch (err) {
      if (streaming) await (result as AsyncGenerator).return?.(undefined);
      return { errors: [err as GraphQLError] };
    }
    t.streaming = streaming;
  }

  /** graphql-ws `onNext`: the masked coordinates of this result (a query's, or one event's). */
  maskedOf(ctx: Context): Pick<FormattedExecutionResult, "extensions"> | null {
    const masked = ctx.policy?.eventMasked;
    return masked?.size ? { extensions: { masked: sorted(masked) } } : null;
  }

  /** graphql-ws `onComplete`: a subscription's END entry, with the events it delivered. */
  async completed(ctx: Context): Promise<void> {
    const t = ctx.policy && this.tracked.get(ctx.policy);
    if (!t?.streaming || !t.meta) return;
    t.streaming = false;
    const entry = this.governance.entry(
      t.meta,
      ctx.principal,
      ctx.policy,
      { errorCode: null, executed: true, phase: "END", rowCount: ctx.policy?.rows ?? null },
      t.startedAt,
    );
    // Nothing is left to withhold: the stream has ended. The failure is logged for the custodians.
    await this.governance.log(entry).catch((err) => {
      log.error({ err, code: ErrorCode.AUDIT_UNAVAILABLE }, "subscription END entry not written");
    });
  }
}
