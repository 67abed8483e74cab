import {
  Arg,
  Ctx,
  ID,
  Int,
  Mutation,
  Query,
  Resolver,
  Root,
  Subscription,
  type SubscribeResolverData,
} from "type-graphql";
import { Topic } from "../events/bus";
import { BadUserInputError, ForbiddenError } from "../errors";
import type { AccessLogRecord } from "../policy/audit";
import type { EffectiveFieldPolicy } from "../policy/field-registry";
import { hasRole } from "../policy/levels";
import { Role, type Principal } from "../policy/principal";
import type { Context } from "./context.type";
import { Classification, Entitlement } from "./enums";
import {
  AccessLogConnection,
  AccessLogEntry,
  AccessLogFilter,
  AccessRequest,
  AuditIntegrity,
  EntitlementHolder,
  FieldPolicy,
  Grant,
  RequestStatus,
} from "./governance.types";
import { checkPageSize, decodeCursor, encodeCursor, SEQ_PART } from "./page";

function requireRole(principal: Principal, role: Role, action: string): void {
  if (!hasRole(principal, role)) {
    throw new ForbiddenError(`Only a principal with role ${role} may ${action}.`, { requiredRole: role });
  }
}

function futureExpiry(expiresAt: Date | null | undefined): Date | null {
  if (expiresAt && expiresAt.getTime() <= Date.now()) {
    throw new BadUserInputError("expiresAt must be in the future.", { argument: "expiresAt" });
  }
  return expiresAt ?? null;
}

/** Owners grant to others only: holding a right and handing it to oneself are separate duties. */
function notSelf(principal: Principal, grantee: string, action: string): void {
  if (principal.id === grantee) throw new ForbiddenError(`Nobody may ${action} themselves.`);
}

@Resolver()
export class GovernanceResolver {
  @Query(() => [FieldPolicy], {
    description:
      "The effective classification of every object field coordinate of the schema, sorted by coordinate.",
  })
  fieldPolicies(@Ctx() ctx: Context): EffectiveFieldPolicy[] {
    return ctx.governance.fields.policies();
  }

  @Mutation(() => FieldPolicy, {
    nullable: true,
    description:
      "Sets a field coordinate's own level (stewards only); it applies from the next operation on, on every replica. The result is its effective level. A denied non-null field nulls its nearest nullable parent, as GraphQL requires.",
  })
  classifyField(
    @Ctx() ctx: Context,
    @Arg("coordinate") coordinate: string,
    @Arg("level", () => Classification) level: Classification,
  ): Promise<EffectiveFieldPolicy> {
    requireRole(ctx.principal, Role.STEWARD, "classify fields");
    return ctx.governance.classify(coordinate, level, ctx.principal.id);
  }

  @Query(() => [AccessRequest], {
    description: "Access requests: all of them for stewards and owners, one's own for everyone else.",
  })
  accessRequests(
    @Ctx() ctx: Context,
    @Arg("status", () => RequestStatus, { nullable: true }) status?: RequestStatus | null,
  ): Promise<AccessRequest[]> {
    const all = hasRole(ctx.principal, Role.STEWARD, Role.OWNER);
    return ctx.governance.requests.list({ principal: all ? undefined : ctx.principal.id, status });
  }

  @Mutation(() => AccessRequest, { description: "Asks the owners for an entitlement." })
  async requestAccess(
    @Ctx() ctx: Context,
    @Arg("entitlement", () => Entitlement) entitlement: Entitlement,
    @Arg("reason") reason: string,
  ): Promise<AccessRequest> {
    if (!reason.trim()) throw new BadUserInputError("Give a reason for the request.", { argument: "reason" });
    const req = await ctx.governance.requests.create(ctx.principal.id, entitlement, reason.trim());
    if (!req) {
      throw new BadUserInputError(`You already have a pending request for ${entitlement}.`, {
        argument: "entitlement",
      });
    }
    return req;
  }

  @Mutation(() => AccessRequest, {
    nullable: true,
    description:
      "Approves (granting the entitlement) or denies a pending request; owners only, never their own.",
  })
  async decideAccessRequest(
    @Ctx() ctx: Context,
    @Arg("id", () => ID) id: string,
    @Arg("approve") approve: boolean,
    @Arg("note", () => String, { nullable: true }) note?: string | null,
    @Arg("expiresAt", () => Date, { nullable: true }) expiresAt?: Date | null,
  ): Promise<AccessRequest> {
    requireRole(ctx.principal, Role.OWNER, "decide access requests");
    const req = /^\d{1,18}$/.test(id) ? await ctx.governance.requests.get(id) : null;
    if (!req) throw new BadUserInputError(`No access request with id ${id}.`, { argument: "id" });
    notSelf(ctx.principal, req.principal, "decide a request of");
    if (req.status !== "PENDING") {
      throw new BadUserInputError(`Request ${id} was already ${req.status.toLowerCase()}.`, {
        argument: "id",
      });
    }
    const decided = await ctx.governance.decide({
      id,
      approve,
      by: ctx.principal.id,
      note: note ?? null,
      expiresAt: futureExpiry(expiresAt),
    });
    if (!decided) throw new BadUserInputError(`Request ${id} was decided meanwhile.`, { argument: "id" });
    return decided;
  }

  @Mutation(() => Grant, {
    nullable: true,
    description:
      "Grants an entitlement (owners only, never to themselves), replacing the principal's current grant of it.",
  })
  grantEntitlement(
    @Ctx() ctx: Context,
    @Arg("principal") principal: string,
    @Arg("entitlement", () => Entitlement) entitlement: Entitlement,
    @Arg("expiresAt", () => Date, { nullable: true }) expiresAt?: Date | null,
  ): Promise<Grant> {
    requireRole(ctx.principal, Role.OWNER, "grant entitlements");
    notSelf(ctx.principal, principal, "grant entitlements to");
    return ctx.governance.grant({
      principal,
      entitlement,
      by: ctx.principal.id,
      expiresAt: futureExpiry(expiresAt),
    });
  }

  @Mutation(() => Grant, {
    nullable: true,
    description:
      "Revokes a principal's grant of an entitlement (owners only); effective from its next operation.",
  })
  async revokeEntitlement(
    @Ctx() ctx: Context,
    @Arg("principal") principal: string,
    @Arg("entitlement", () => Entitlement) entitlement: Entitlement,
  ): Promise<Grant> {
    requireRole(ctx.principal, Role.OWNER, "revoke entitlements");
    const revoked = await ctx.governance.revoke(principal, entitlement, ctx.principal.id);
    if (!revoked) {
      throw new BadUserInputError(`${principal} holds no grant of ${entitlement}.`, {
        argument: "principal",
      });
    }
    return revoked;
  }

  @Query(() => [Grant], { nullable: true, description: "Every grant ever made, newest first." })
  grants(
    @Ctx() ctx: Context,
    @Arg("principal", () => String, { nullable: true }) principal?: string | null,
  ): Promise<Grant[]> {
    return ctx.governance.grants.list(principal);
  }

  @Query(() => [EntitlementHolder], {
    nullable: true,
    description: "Who held which entitlement at the instant `at`.",
  })
  entitlementReport(@Ctx() ctx: Context, @Arg("at", () => Date) at: Date): Promise<EntitlementHolder[]> {
    return ctx.governance.grants.holdersAt(at);
  }

  @Query(() => AccessLogConnection, {
    nullable: true,
    description: "Access-log entries, newest first, paged by cursor.",
  })
  async accessLog(
    @Ctx() ctx: Context,
    @Arg("filter", () => AccessLogFilter, { nullable: true }) filter?: AccessLogFilter | null,
    @Arg("first", () => Int, { defaultValue: 100, nullable: true }) first?: number | null,
    @Arg("after", () => String, { nullable: true }) after?: string | null,
  ): Promise<AccessLogConnection> {
    const size = checkPageSize(first ?? 100, ctx.config.limits.maxPageSize);
    if (filter?.from && filter.to && filter.from > filter.to) {
      throw new BadUserInputError("filter.from must not be after filter.to.", { argument: "filter" });
    }
    const afterSeq = after ? Number(decodeCursor(after, [SEQ_PART])[0]) : null;
    const rows = await ctx.governance.audit.page(filter ?? {}, size + 1, afterSeq);
    const nodes = rows.slice(0, size);
    return {
      nodes,
      pageInfo: {
        hasNextPage: rows.length > size,
        endCursor: nodes.length ? encodeCursor([nodes[nodes.length - 1].id]) : null,
      },
    };
  }

  @Query(() => AuditIntegrity, {
    nullable: true,
    description: "Recomputes the access log's hash chain; reports the first altered or missing entry.",
  })
  verifyAccessLog(@Ctx() ctx: Context): Promise<AuditIntegrity> {
    return ctx.governance.audit.verify();
  }

  @Subscription(() => AccessLogEntry, {
    nullable: true,
    subscribe: ({ context }: SubscribeResolverData<unknown, Record<string, unknown>, Context>) =>
      context.bus.subscribe(Topic.ACCESS_LOG),
    description: "Each access-log entry as it is committed.",
  })
  accessEvents(@Root() entry: AccessLogRecord): AccessLogEntry {
    return entry;
  }
}
