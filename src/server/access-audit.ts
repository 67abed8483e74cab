import type { IncomingMessage } from "node:http";
import type { GraphQLRequestContextWillSendResponse } from "@apollo/server";
import { createHash } from "node:crypto";
import {
  getOperationAST,
  parse,
  type DocumentNode,
  type ExecutionResult,
  type FormattedExecutionResult,
  type GraphQLError,
} from "graphql";
import type { AccessLogInput } from "../policy/audit";
import { AuditUnavailableError, ErrorCode } from "../errors";
import { log } from "../log";
import { sorted, type Governance, type OperationMeta } from "../policy/governance";
import type { OperationKind } from "../policy/audit";
import type { Principal } from "../policy/principal";
import type { PolicySession } from "../policy/session";
import type { Context } from "../resolvers/context.type";

/** Describes an operation from its text (parsed here unless a document is at hand). */
export function describeOperation(
  query: string | undefined,
  operationName: string | null | undefined,
  origin: { client: string | null; ip: string | null },
  document?: DocumentNode,
): OperationMeta {
  let kind: OperationKind = "QUERY";
  let name = operationName ?? null;
  try {
    const op = getOperationAST(document ?? parse(query ?? ""), operationName);
    if (op) {
      kind = op.operation.toUpperCase() as OperationKind;
      name = op.name?.value ?? name;
    }
  } catch {
    // Unparseable: logged as a query with the hash of its text.
  }
  return {
    kind,
    name,
    hash: createHash("sha256")
      .update(query ?? "")
      .digest("hex"),
    ...origin,
  };
}

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

/** The error code of a refused HTTP response: its body's first error's, else what its status says. */
export function refusalCode(status: number, body: unknown): string {
  if (typeof body === "string" && body.length < 65_536) {
    try {
      const code = codeOf(
        (JSON.parse(body) as { errors?: { extensions?: Record<string, unknown> }[] }).errors,
      );
      if (code) return code;
    } catch {
      // not JSON: the status speaks
    }
  }
  return status === 401 ? ErrorCode.UNAUTHENTICATED : `HTTP_${status}`;
}

const codeOf = (errors: readonly { extensions?: Record<string, unknown> }[] | undefined): string | null =>
  (errors?.[0]?.extensions?.code as string | undefined) ?? null;

/** An HTTP request on the GraphQL route: whether it got its access-log entry, and what it answered. */
export interface RequestRecord {
  origin: Origin;
  startedAt: number;
  logged: boolean;
  /** The body sent, kept only until the request is logged (a refusal's error code is read from it). */
  body?: unknown;
}

/** Refusals of the caller's credentials: logged at warn, the rest of the operations at info. */
const UNAUTHENTICATED_CODES = new Set<string>([ErrorCode.UNAUTHENTICATED, "CLOSE_4403"]);

/**
 * One structured line per operation (per refusal too, before anonymous ones are aggregated in the
 * access log): who, what, how long, and how it ended. A missing or invalid token is logged at warn.
 */
export function logOperation(entry: AccessLogInput): void {
  const unauthenticated = !!entry.errorCode && UNAUTHENTICATED_CODES.has(entry.errorCode);
  if (!log.isLevelEnabled(unauthenticated ? "warn" : "info")) return;
  const line = {
    principal: entry.principal,
    operation: entry.operation,
    operationName: entry.operationName,
    hash: entry.operationHash,
    phase: entry.phase ?? undefined,
    durationMs: entry.durationMs,
    outcome: entry.decision,
    errorCode: entry.errorCode ?? undefined,
    rows: entry.rowCount ?? undefined,
    client: entry.client,
    ip: entry.ip,
  };
  if (unauthenticated) log.warn(line, "unauthenticated request");
  else log.info(line, "operation");
}

/** Anonymous refusals are aggregated per interval: at most this many entries, and one per key at once. */
const ANONYMOUS_INTERVAL_MS = 10_000;
const ANONYMOUS_KEYS = 100;

/**
 * Refusals of callers without a valid token, bounded so that they cannot flood the log: the first one
 * of each (address, error code) in an interval is written at once; the others of the interval become
 * one entry at its end, whose `occurrences` counts them. Past ANONYMOUS_KEYS keys in one interval, the
 * rest share one key per error code, with no address.
 */
class AnonymousRefusals {
  private seen = new Set<string>();
  private held = new Map<string, { entry: AccessLogInput; n: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly write: (entry: AccessLogInput) => Promise<unknown>) {
    this.timer = setInterval(() => void this.flush(), ANONYMOUS_INTERVAL_MS);
    this.timer.unref();
  }

  add(entry: AccessLogInput): void {
    const key = `${entry.ip}|${entry.errorCode}`;
    if (!this.seen.has(key) && this.seen.size < ANONYMOUS_KEYS) {
      this.seen.add(key);
      void this.save(entry);
      return;
    }
    const k = this.seen.has(key) ? key : `*|${entry.errorCode}`;
    const held = this.held.get(k);
    if (held) held.n++;
    else this.held.set(k, { entry: k === key ? entry : { ...entry, ip: null, client: null }, n: 1 });
  }

  /** Writes what the interval held, one entry per key, and starts a new interval. */
  flush(): Promise<unknown> {
    const held = [...this.held.values()];
    this.held.clear();
    this.seen.clear();
    return Promise.all(
      held.map(({ entry, n }) =>
        this.save({ ...entry, at: new Date(), operationName: null, occurrences: n, durationMs: null }),
      ),
    );
  }

  private save(entry: AccessLogInput): Promise<unknown> {
    // Nothing is withheld for a refusal: a failed write is logged for the custodians.
    return this.write(entry).catch((err) =>
      log.error({ err, code: ErrorCode.AUDIT_UNAVAILABLE }, "access-log entry of a refusal not written"),
    );
  }

  close(): Promise<unknown> {
    clearInterval(this.timer);
    return this.flush();
  }
}

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
  private readonly tracked = new WeakMap<object, Tracked & { request?: RequestRecord }>();
  private readonly anonymous: AnonymousRefusals;

  constructor(private readonly governance: Governance) {
    this.anonymous = new AnonymousRefusals((entry) => governance.log(entry));
  }

  /** Starts tracking an operation's context (called when the context is created). */
  track(ctx: Context, origin: Origin, request?: RequestRecord): void {
    if (ctx.policy) this.tracked.set(ctx.policy, { origin, startedAt: ctx.policy.startedAt, request });
  }

  /**
   * Logs a refusal that no operation's entry covers: an HTTP request refused before or around GraphQL
   * (by method, body, CSRF prevention, batching, parameters, authentication), or a WebSocket connection
   * the server closed. Anonymous ones are aggregated; the rest are one entry each.
   */
  logRefusal(
    principal: Principal | null,
    origin: Origin,
    request: { query?: unknown; operationName?: unknown },
    errorCode: string,
    startedAt: number,
  ): Promise<unknown> {
    const query = typeof request.query === "string" ? request.query : undefined;
    const meta = describeOperation(
      query,
      typeof request.operationName === "string" ? request.operationName : null,
      origin,
    );
    if (query === undefined) meta.kind = "REQUEST";
    const entry = this.governance.entry(meta, principal, null, { errorCode, executed: false }, startedAt);
    logOperation(entry);
    if (!principal) {
      this.anonymous.add(entry);
      return Promise.resolve();
    }
    return this.governance
      .log(entry)
      .catch((err) =>
        log.error({ err, code: ErrorCode.AUDIT_UNAVAILABLE }, "access-log entry of a refusal not written"),
      );
  }

  /**
   * Writes the entry of an export (or of its refusal), on `session`'s decisions; rejects with
   * AuditUnavailableError when it cannot be written, so that the export is withheld.
   */
  async logExport(
    meta: OperationMeta,
    session: PolicySession,
    outcome: { errorCode: string | null; executed: boolean; rowCount?: number | null },
    startedAt: number,
  ): Promise<void> {
    const entry = this.governance.entry(meta, session.principal, session, outcome, startedAt);
    logOperation(entry);
    await this.governance.log(entry);
  }

  /** Writes the anonymous refusals held for the current interval. */
  close(): Promise<unknown> {
    return this.anonymous.close();
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
    logOperation(entry);
    try {
      await this.governance.log(entry);
      return error;
    } catch (err) {
      return err as AuditUnavailableError;
    }
  }

  /** Lists the coordinates masked in an HTTP operation's result under `extensions.masked`. */
  addMasked(ctx: Context, result: FormattedExecutionResult): void {
    const s = ctx.policy;
    if (s?.masked.size) result.extensions = { ...result.extensions, masked: sorted(s.masked) };
  }

  /**
   * Writes an HTTP operation's entry before its response leaves; when it cannot be written, the
   * response is replaced by AUDIT_UNAVAILABLE (503).
   */
  async logHttp(
    rc: Pick<
      GraphQLRequestContextWillSendResponse<Context>,
      "contextValue" | "request" | "response" | "document"
    >,
  ): Promise<void> {
    const { contextValue, request, response, document } = rc;
    const t = contextValue.policy && this.tracked.get(contextValue.policy);
    if (!t || response.body.kind !== "single") return;
    if (t.request) t.request.logged = true;
    const result = response.body.singleResult;
    const meta = describeOperation(request.query, request.operationName, t.origin, document);
    const entry = this.governance.entry(
      meta,
      contextValue.principal,
      contextValue.policy,
      { errorCode: codeOf(result.errors), executed: result.data !== undefined },
      t.startedAt,
    );
    logOperation(entry);
    try {
      await this.governance.log(entry);
    } catch (err) {
      const e = err as AuditUnavailableError;
      response.body.singleResult = {
        errors: [{ message: e.message, extensions: { code: e.extensions.code } }],
      };
      if (response.http) response.http.status = 503;
    }
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
    // A subscription's line is its END's, with its duration and the events it delivered.
    if (!streaming) logOperation(entry);
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
    logOperation(entry);
    // Nothing is left to withhold: the stream has ended. The failure is logged for the custodians.
    await this.governance.log(entry).catch((err) => {
      log.error({ err, code: ErrorCode.AUDIT_UNAVAILABLE }, "subscription END entry not written");
    });
  }
}
