import type { GraphQLSchema } from "graphql";
import { LRUCache } from "lru-cache";
import type { DataSource } from "typeorm";
import { AccessRequestsRepo, type AccessRequestRow } from "../db/access-requests.repo";
import { FieldPoliciesRepo } from "../db/field-policies.repo";
import { GrantsRepo, type GrantRow, type NewGrant } from "../db/grants.repo";
import type { PgListener } from "../db/listener";
import { POLICY_CHANNEL } from "../db/policy-changes";
import { sqlOf, urlOf } from "../db/sql";
import { AuditUnavailableError, BadUserInputError } from "../errors";
import { log } from "../log";
import {
  AuditLog,
  type AuditKey,
  type AccessDecision,
  type AccessLogInput,
  type AccessLogRecord,
  type AccessPhase,
  type OperationKind,
} from "./audit";
import { FieldRegistry, type EffectiveFieldPolicy } from "./field-registry";
import type { MarketClock } from "../core/market-clock";
import type { Classification, Entitlement, Principal } from "./principal";
import { PolicySession, type SessionSource } from "./session";

export interface GovernanceOptions {
  dataSource: DataSource;
  /** The schema as built (its directives give each field's static classification). */
  schema: GraphQLSchema;
  clock: MarketClock;
  delaySeconds: number;
  statementTimeoutMs: number;
  /** Keys the access log's chain and signs its checkpoints. */
  auditKey: AuditKey;
  /** Where the access log's signed head checkpoint is kept, outside the database. @default none */
  checkpointFile?: string;
  /** How often that checkpoint is taken, ms. @default 10000 */
  checkpointMs?: number;
  /** Receives each committed access-log entry. */
  onAccessLogged?: (record: AccessLogRecord) => void;
  /** The process's LISTEN connection: policy changes made on any replica arrive on it. */
  listener: PgListener;
}

/** Who sent an operation and what it was, as the access log describes it. */
export interface OperationMeta {
  kind: OperationKind;
  name: string | null;
  /** sha256 (hex) of the query text. */
  hash: string;
  client: string | null;
  ip: string | null;
}

/** The outcome of an operation (or of one phase of a subscription), for its access-log entry. */
export interface Outcome {
  /** extensions.code of the first error, if any. */
  errorCode: string | null;
  /** False when the operation was refused before execution (authentication, parsing, validation, limits). */
  executed: boolean;
  phase?: AccessPhase;
  /** Rows served; defaults to the session's count. */
  rowCount?: number | null;
  /** Refusals the entry stands for, when aggregated. @default null (one operation) */
  occurrences?: number | null;
}

/**
 * DENIED: refused before execution, or every root field refused by policy. PARTIAL: something masked
 * or denied while the rest was served. ALLOWED: nothing withheld (errors of other kinds keep their code).
 */
function decide(session: PolicySession | null, executed: boolean): AccessDecision {
  if (!executed || !session) return "DENIED";
  if (session.denied.size && session.rootServed === 0) return "DENIED";
  return session.denied.size || session.masked.size ? "PARTIAL" : "ALLOWED";
}

/** Coordinates, symbols: sorted, so that equal sets log and compare equal. */
export const sorted = (s: ReadonlySet<string>): string[] => [...s].sort();

/**
 * How long a principal's entitlements are reused without a query. Changes are also announced by
 * NOTIFY, which drops the cached copy on every replica at once; this bound covers a lost notice.
 */
const ENTITLEMENT_CACHE_MS = 1000;
/** Principals whose entitlements are cached (the least recently used forgotten first). */
const ENTITLEMENT_CACHE_MAX = 50_000;

/**
 * The governance service: field classification (static directives plus run-time overrides), the
 * callers' entitlements, grants and requests, and the access log. Transport-agnostic: the server opens
 * a session per operation and appends an entry when the operation ends.
 */
export class Governance implements SessionSource {
  readonly grants: GrantsRepo;
  readonly requests: AccessRequestsRepo;
  private readonly policies: FieldPoliciesRepo;
  readonly fields: FieldRegistry;
  readonly audit: AuditLog;
  readonly clock: MarketClock;
  readonly delaySeconds: number;
  private syncing: Promise<void> | null = null;
  private readonly cache = new LRUCache<string, Entitlement[]>({
    max: ENTITLEMENT_CACHE_MAX,
    ttl: ENTITLEMENT_CACHE_MS,
  });
  /** Bumped by every invalidation: a lookup that raced one is not cached. */
  private generation = 0;
  private readonly listener: PgListener;
  private unlisten: (() => Promise<void>) | null = null;

  private constructor(opts: GovernanceOptions) {
    this.grants = new GrantsRepo(opts.dataSource);
    this.requests = new AccessRequestsRepo(opts.dataSource);
    this.policies = new FieldPoliciesRepo(opts.dataSource);
    this.fields = new FieldRegistry(opts.schema);
    this.clock = opts.clock;
    this.delaySeconds = opts.delaySeconds;
    this.listener = opts.listener;
    this.audit = new AuditLog({
      url: urlOf(opts.dataSource),
      key: opts.auditKey,
      checkpointFile: opts.checkpointFile,
      checkpointMs: opts.checkpointMs,
      read: sqlOf(opts.dataSource),
      statementTimeoutMs: opts.statementTimeoutMs,
      onCommit: opts.onAccessLogged,
    });
  }

  static async start(opts: GovernanceOptions): Promise<Governance> {
    const g = new Governance(opts);
    try {
      await g.listen();
      await g.syncPolicies();
    } catch (err) {
      await g.close();
      throw err;
    }
    return g;
  }

  /**
   * Listens for policy changes made by any replica. While the connection is down nothing is cached:
   * every operation reads its entitlements, so a lost connection costs speed, never correctness. Once it
   * is back, what changed meanwhile is read again.
   */
  private async listen(): Promise<void> {
    this.unlisten = await this.listener.listen(POLICY_CHANNEL, {
      notify: (payload) => {
        if (payload === "fields") this.resyncPolicies();
        else if (payload.startsWith("p:")) this.invalidate(payload.slice(2));
      },
      resync: () => {
        this.invalidate();
        this.resyncPolicies();
      },
    });
  }

  private resyncPolicies(): void {
    this.syncPolicies(true).catch((err) => log.error({ err }, "policy sync failed"));
  }

  /** Drops the cached entitlements of one principal (all when none is named). */
  private invalidate(principal?: string): void {
    this.generation++;
    if (principal === undefined) this.cache.clear();
    else this.cache.delete(principal);
  }

  /**
   * Brings the run-time field policies up to date (one load, however many operations ask at once).
   * `fresh`: for a change known to be committed, so a load already under way (which may predate it)
   * is not enough.
   */
  async syncPolicies(fresh = false): Promise<void> {
    if (fresh && this.syncing) await this.syncing.catch(() => {});
    this.syncing ??= this.policies
      .current()
      .then(({ rows, revision }) => this.fields.setOverrides(rows, revision))
      .finally(() => (this.syncing = null));
    return this.syncing;
  }

  async entitlementsOf(principal: Principal): Promise<Entitlement[]> {
    const hit = this.listener.connected && this.cache.get(principal.id);
    if (hit) return hit;
    const generation = this.generation;
    const snap = await this.grants.snapshot(principal.id);
    if (snap.revision !== this.fields.revision) await this.syncPolicies();
    if (this.listener.connected && generation === this.generation) {
      // Not past the first of its grants to expire.
      const expiresIn = (snap.nextExpiry?.getTime() ?? Infinity) - Date.now();
      this.cache.set(principal.id, snap.entitlements, {
        ttl: Math.max(1, Math.min(ENTITLEMENT_CACHE_MS, expiresIn)),
      });
    }
    return snap.entitlements;
  }

  /** Grants, effective at once on this replica (and on the others as soon as the NOTIFY arrives). */
  async grant(g: NewGrant): Promise<GrantRow> {
    const row = await this.grants.grant(g);
    this.invalidate(g.principal);
    return row;
  }

  async revoke(principal: string, entitlement: Entitlement, by: string): Promise<GrantRow | null> {
    const row = await this.grants.revoke(principal, entitlement, by);
    this.invalidate(principal);
    return row;
  }

  async decide(d: Parameters<AccessRequestsRepo["decide"]>[0]): Promise<AccessRequestRow | null> {
    const row = await this.requests.decide(d);
    if (row) this.invalidate(row.principal);
    return row;
  }

  /** A policy session for one operation, with the caller's entitlements as of now. */
  open(principal: Principal): Promise<PolicySession> {
    return PolicySession.open(this, principal);
  }

  /** Reclassifies a field coordinate; every operation that starts afterwards sees the new level. */
  async classify(coordinate: string, level: Classification, by: string): Promise<EffectiveFieldPolicy> {
    const field = this.fields.field(coordinate);
    if (!field) {
      throw new BadUserInputError(
        `Unknown field coordinate "${coordinate}": use Type.field as fieldPolicies lists them.`,
        { argument: "coordinate" },
      );
    }
    await this.policies.classify(coordinate, level, by);
    await this.syncPolicies(true);
    return this.fields.policies().find((p) => p.coordinate === coordinate)!;
  }

  /** The access-log entry of an operation (or of one phase of a subscription). */
  entry(
    meta: OperationMeta,
    principal: Principal | null,
    session: PolicySession | null,
    outcome: Outcome,
    startedAt: number,
  ): AccessLogInput {
    return {
      at: new Date(),
      principal: principal?.id ?? null,
      roles: principal ? [...principal.roles] : [],
      client: meta.client,
      ip: meta.ip,
      operation: meta.kind,
      operationName: meta.name,
      operationHash: meta.hash,
      phase: outcome.phase ?? null,
      allowed: session ? sorted(session.allowed) : [],
      masked: session ? sorted(session.masked) : [],
      denied: session ? sorted(session.denied) : [],
      symbols: session ? sorted(session.symbols) : [],
      delayed: session?.delayed ?? false,
      decision: decide(session, outcome.executed),
      errorCode: outcome.errorCode,
      rowCount: outcome.rowCount !== undefined ? outcome.rowCount : (session?.rows ?? null),
      durationMs: Math.round((performance.now() - startedAt) * 1000) / 1000,
      occurrences: outcome.occurrences ?? null,
    };
  }

  /** Appends an entry; AuditUnavailableError when it cannot be written (the caller withholds its response). */
  async log(entry: AccessLogInput): Promise<AccessLogRecord> {
    try {
      return await this.audit.append(entry);
    } catch {
      throw new AuditUnavailableError();
    }
  }

  async close(): Promise<void> {
    await this.unlisten?.();
    await this.audit.close();
  }
}
