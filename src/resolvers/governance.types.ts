import { Directive, Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from "type-graphql";
import { Classification, Entitlement, Role } from "./enums";
import { PageInfo } from "./page";

export enum AccessDecision {
  ALLOWED = "ALLOWED",
  PARTIAL = "PARTIAL",
  DENIED = "DENIED",
}

export enum RequestStatus {
  PENDING = "PENDING",
  APPROVED = "APPROVED",
  DENIED = "DENIED",
}

export enum OperationKind {
  QUERY = "QUERY",
  MUTATION = "MUTATION",
  SUBSCRIPTION = "SUBSCRIPTION",
  /** An HTTP request or WebSocket connection refused before any operation could be read. */
  REQUEST = "REQUEST",
}

registerEnumType(AccessDecision, { name: "AccessDecision" });
registerEnumType(RequestStatus, { name: "RequestStatus" });
registerEnumType(OperationKind, { name: "OperationKind" });

@ObjectType({
  description: "An entitlement granted by an owner; revocation sets revokedAt, nothing is deleted.",
})
@Directive("@classified(level: RESTRICTED)")
export class Grant {
  @Field(() => ID)
  id: string;

  @Field()
  principal: string;

  @Field(() => Entitlement)
  entitlement: Entitlement;

  @Field()
  grantedBy: string;

  @Field()
  grantedAt: Date;

  @Field(() => Date, { nullable: true })
  expiresAt: Date | null;

  @Field(() => Date, { nullable: true })
  revokedAt: Date | null;
}

@ObjectType({
  description: "A principal's request for an entitlement, decided by an owner other than itself.",
})
export class AccessRequest {
  @Field(() => ID)
  id: string;

  @Field()
  principal: string;

  @Field(() => Entitlement)
  entitlement: Entitlement;

  @Field()
  reason: string;

  @Field(() => RequestStatus)
  status: `${RequestStatus}`;

  @Field()
  requestedAt: Date;

  @Field(() => String, { nullable: true })
  decidedBy: string | null;

  @Field(() => Date, { nullable: true })
  decidedAt: Date | null;

  @Field(() => String, { nullable: true })
  note: string | null;
}

@ObjectType({
  description:
    "A field coordinate's effective classification: the highest of its own level (a steward's override, else its @classified), its type's and its return type's.",
})
export class FieldPolicy {
  @Field()
  coordinate: string;

  @Field(() => Classification)
  level: Classification;

  @Field(() => String, {
    nullable: true,
    description: "The steward who last reclassified it; null if never.",
  })
  updatedBy: string | null;

  @Field(() => Date, { nullable: true })
  updatedAt: Date | null;
}

@ObjectType({ description: "One operation in the append-only, hash-chained access log." })
@Directive("@classified(level: RESTRICTED)")
export class AccessLogEntry {
  @Field(() => ID)
  id: string;

  @Field(() => Float)
  seq: number;

  @Field()
  at: Date;

  @Field(() => String, { nullable: true, description: "Null when authentication failed." })
  principal: string | null;

  @Field(() => [Role])
  roles: string[];

  @Field(() => String, { nullable: true })
  client: string | null;

  @Field(() => String, { nullable: true })
  ip: string | null;

  @Field(() => OperationKind)
  operation: `${OperationKind}`;

  @Field(() => String, { nullable: true })
  operationName: string | null;

  @Field({ description: "sha256 (hex) of the query text." })
  operationHash: string;

  @Field(() => String, {
    nullable: true,
    description: "START or END for a subscription's two entries; null for queries and mutations.",
  })
  phase: string | null;

  @Field(() => [String])
  allowed: string[];

  @Field(() => [String])
  masked: string[];

  @Field(() => [String])
  denied: string[];

  @Field(() => [String])
  symbols: string[];

  @Field()
  delayed: boolean;

  @Field(() => AccessDecision)
  decision: `${AccessDecision}`;

  @Field(() => String, { nullable: true })
  errorCode: string | null;

  @Field(() => Int, {
    nullable: true,
    description: "Rows served; for a subscription's END, events delivered.",
  })
  rowCount: number | null;

  @Field(() => Float, { nullable: true })
  durationMs: number | null;

  @Field(() => Int, {
    nullable: true,
    description:
      "How many refused requests this entry stands for: anonymous refusals of one address and code are aggregated per interval. Null for one operation.",
  })
  occurrences: number | null;

  @Field({
    description:
      "Chained by HMAC under the deployment's audit key (false only for entries written before it).",
  })
  keyed: boolean;

  @Field()
  prevHash: string;

  @Field({
    description:
      "HMAC-SHA256 under the audit key of prevHash ‖ canonical entry, hex (sha256 for entries written before the key).",
  })
  hash: string;
}

@ObjectType()
@Directive("@classified(level: RESTRICTED)")
export class AccessLogConnection {
  @Field(() => [AccessLogEntry])
  nodes: AccessLogEntry[];

  @Field(() => PageInfo)
  pageInfo: PageInfo;
}

@ObjectType({ description: "The result of recomputing the access log's hash chain." })
@Directive("@classified(level: RESTRICTED)")
export class AuditIntegrity {
  @Field()
  ok: boolean;

  @Field(() => Float, { description: "Entries checked before the first break (all of them when ok)." })
  checked: number;

  @Field(() => Float, { nullable: true, description: "The first altered or missing entry's seq." })
  firstBrokenSeq: number | null;

  @Field(() => Float, {
    nullable: true,
    description:
      "The newest signed head checkpoint (kept outside the database) the log was held against; null before the first.",
  })
  checkpointSeq: number | null;

  @Field(() => String, { nullable: true, description: "What is wrong at firstBrokenSeq; null when ok." })
  problem: string | null;
}

@ObjectType({ description: "A principal holding an entitlement over [since, until)." })
@Directive("@classified(level: RESTRICTED)")
export class EntitlementHolder {
  @Field()
  principal: string;

  @Field(() => Entitlement)
  entitlement: Entitlement;

  @Field()
  since: Date;

  @Field(() => Date, { nullable: true })
  until: Date | null;
}

@InputType()
export class AccessLogFilter {
  @Field(() => String, { nullable: true })
  principal?: string | null;

  @Field(() => AccessDecision, { nullable: true })
  decision?: AccessDecision | null;

  @Field(() => String, { nullable: true, description: "Entries that allowed, masked or denied it." })
  coordinate?: string | null;

  @Field(() => Date, { nullable: true })
  from?: Date | null;

  @Field(() => Date, { nullable: true })
  to?: Date | null;
}
