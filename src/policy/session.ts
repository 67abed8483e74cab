import { ForbiddenError } from "../errors";
import type { FieldRegistry } from "./field-registry";
import { LEVELS, readableRank } from "./levels";
import type { MarketClock } from "../core/market-clock";
import { Entitlement, type Principal } from "./principal";

/** What a session records as served: what `absorb` adds to another session's account. */
export type ServedAccount = Pick<
  PolicySession,
  "allowed" | "masked" | "denied" | "symbols" | "rootServed" | "delayed"
>;

/**
 * What `s` served, frozen: one per distinct account among `known` (keyed by content), so that the many
 * subscribers of a shared stream add an account's sets once, not once per event.
 */
export function servedAccount(s: ServedAccount, known: Map<string, ServedAccount>): ServedAccount {
  const key = [s.allowed, s.masked, s.denied, s.symbols].map((set) => [...set].join(",")).join("|");
  const k = `${key}|${s.rootServed}|${s.delayed}`;
  let account = known.get(k);
  if (!account) {
    if (known.size >= 256) known.clear();
    account = Object.freeze({
      allowed: new Set(s.allowed),
      masked: new Set(s.masked),
      denied: new Set(s.denied),
      symbols: new Set(s.symbols),
      rootServed: s.rootServed,
      delayed: s.delayed,
    });
    known.set(k, account);
  }
  return account;
}

/** The outcome of the check of one field coordinate. */
export enum Access {
  UNDECIDED = 0,
  ALLOW = 1,
  /** Entitlement missing: the value is null and the coordinate listed under `extensions.masked`. */
  MASK = 2,
  /** Classification above the caller's roles: null with a FORBIDDEN error. */
  DENY = 3,
}

/** What a session needs from the governance service: the live policy and the caller's grants. */
export interface SessionSource {
  readonly fields: FieldRegistry;
  readonly clock: MarketClock;
  readonly delaySeconds: number;
  /** The caller's active entitlements, with the field policies brought up to date first. */
  entitlementsOf(principal: Principal): Promise<Entitlement[]>;
}

/** How stale a streaming operation's entitlements may get before the next event re-reads them. */
export const RECHECK_MS = 1000;

/** At most this many symbols are kept for an access-log entry. */
const MAX_SYMBOLS = 500;

/**
 * The policy's view of one operation: who asks, what they hold, and what they were served. Decisions
 * are cached per field for the operation (one array read per resolved field); a subscription resets
 * them before each event, re-reading entitlements when they are older than RECHECK_MS.
 */
export class PolicySession {
  readonly readable: number;
  entitlements: ReadonlySet<Entitlement> = new Set();
  readonly allowed = new Set<string>();
  readonly masked = new Set<string>();
  readonly denied = new Set<string>();
  /** Coordinates masked in the result being built (a query's, or one subscription event's). */
  readonly eventMasked = new Set<string>();
  readonly symbols = new Set<string>();
  /** Rows served by root fields (list length, connection nodes, or 1 per object). */
  rows = 0;
  /** Root fields that resolved without error. */
  rootServed = 0;
  /** True once any data was served delayed. */
  delayed = false;
  readonly startedAt = performance.now();
  private decisions: Uint8Array;
  private checkedAt = 0;
  /** Frozen accounts already absorbed (their sets are in this account's). */
  private readonly absorbed = new WeakSet<ServedAccount>();

  private constructor(
    private readonly source: SessionSource,
    readonly principal: Principal,
  ) {
    this.readable = readableRank(principal);
    this.decisions = new Uint8Array(source.fields.fields.length);
  }

  static async open(source: SessionSource, principal: Principal): Promise<PolicySession> {
    const s = new PolicySession(source, principal);
    await s.refresh();
    return s;
  }

  /**
   * A session holding, for good, what `of` holds now: it executes a subscription shared by every
   * subscriber with the same view (see `view()`), each of whom is re-checked on its own.
   */
  static sharing(of: PolicySession): Promise<PolicySession> {
    const held = [...of.entitlements];
    const { fields, clock, delaySeconds } = of.source;
    const source: SessionSource = { fields, clock, delaySeconds, entitlementsOf: async () => held };
    return PolicySession.open(source, { id: `view ${of.view()}`, roles: of.principal.roles });
  }

  has(entitlement: Entitlement): boolean {
    return this.entitlements.has(entitlement);
  }

  /** Re-reads entitlements and field policies; later checks see the new ones. */
  async refresh(): Promise<void> {
    this.entitlements = new Set(await this.source.entitlementsOf(this.principal));
    this.checkedAt = performance.now();
    this.decisions.fill(Access.UNDECIDED);
  }

  /** Called before each subscription event: fresh decisions, entitlements at most RECHECK_MS old. */
  async beginEvent(): Promise<void> {
    if (performance.now() - this.checkedAt >= RECHECK_MS) await this.refresh();
    else this.decisions.fill(Access.UNDECIDED);
    this.eventMasked.clear();
  }

  decide(id: number): Access {
    const known = this.decisions[id] as Access;
    if (known !== Access.UNDECIDED) return known;
    const { fields } = this.source;
    const field = fields.fields[id];
    let access: Access;
    if (fields.rank(id) > this.readable) {
      access = Access.DENY;
      this.denied.add(field.coordinate);
    } else if (field.entitlement && !this.entitlements.has(field.entitlement)) {
      access = Access.MASK;
      this.masked.add(field.coordinate);
      this.eventMasked.add(field.coordinate);
    } else {
      access = Access.ALLOW;
      this.allowed.add(field.coordinate);
    }
    this.decisions[id] = access;
    return access;
  }

  /** The error of a denied field, naming its coordinate and level. */
  forbidden(id: number): ForbiddenError {
    const { coordinate } = this.source.fields.fields[id];
    const level = this.source.fields.level(id);
    const roles = this.principal.roles.length ? this.principal.roles.join(", ") : "none";
    return new ForbiddenError(
      `Not allowed to read ${coordinate}: it is ${level}, and your roles (${roles}) may read up to ${LEVELS[this.readable]}.`,
      { coordinate },
    );
  }

  /** True when the entitlements were read more than RECHECK_MS ago. */
  get stale(): boolean {
    return performance.now() - this.checkedAt >= RECHECK_MS;
  }

  /** What decides a result's shape: the roles and the entitlements held (equal views, equal results). */
  view(): string {
    return `${[...this.principal.roles].sort().join(",")}/${[...this.entitlements].sort().join(",")}`;
  }

  /** Forgets what was served (a shared subscription's session, before each event it executes). */
  resetServed(): void {
    this.allowed.clear();
    this.masked.clear();
    this.denied.clear();
    this.symbols.clear();
    this.rows = 0;
    this.rootServed = 0;
    this.delayed = false;
  }

  /**
   * Adds what `shared` decided and touched to this session's account: one subscriber's share of a shared
   * event. Its rows count once the event is written to the subscriber (`delivered`).
   */
  absorb(shared: ServedAccount): void {
    this.rootServed += shared.rootServed;
    if (shared.delayed) this.delayed = true;
    // A frozen account (see `servedAccount`) adds nothing new the second time.
    if (this.absorbed.has(shared)) return;
    if (Object.isFrozen(shared)) this.absorbed.add(shared);
    for (const c of shared.allowed) this.allowed.add(c);
    for (const c of shared.masked) this.masked.add(c);
    for (const c of shared.denied) this.denied.add(c);
    for (const s of shared.symbols) this.touch(s);
  }

  /** One event, of `rows` rows, was written to the subscriber. */
  delivered(rows: number): void {
    this.rows += rows;
  }

  /** Notes a symbol the operation touched (bounded, so one huge page cannot bloat its log entry). */
  touch(symbol: string): void {
    if (this.symbols.size < MAX_SYMBOLS) this.symbols.add(symbol);
  }

  /**
   * The newest event time this caller may see, or null for real time (REALTIME held). Measured on the
   * market clock at the moment of the call, so a subscription asks again for each event.
   */
  delayCutoff(): Date | null {
    if (this.entitlements.has(Entitlement.REALTIME)) return null;
    this.delayed = true;
    return new Date(this.source.clock.now().getTime() - this.source.delaySeconds * 1000);
  }
}

/**
 * The newest event time an operation may serve, or null when it may serve real-time data (REALTIME
 * held, or the policy layer switched off). Every resolver of quote-derived data filters by it
 * (`event_time <= cutoff` in SQL) and marks what it serves `delayed: cutoff !== null`.
 */
export function delayCutoff(ctx: { policy: PolicySession | null }): Date | null {
  return ctx.policy ? ctx.policy.delayCutoff() : null;
}
