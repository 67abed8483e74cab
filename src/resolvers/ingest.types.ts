import { Directive, Field, Float, ID, ObjectType } from "type-graphql";
import { PageInfo } from "./page";

@ObjectType("IngestStatus", {
  description:
    "The embedded ingest loop: connection, progress and counts; with several replicas, who holds the ingest lease.",
})
@Directive("@classified(level: CONFIDENTIAL)")
export class IngestStatusType {
  @Field({
    description:
      "starting, backfilling, streaming, reconnecting or stopped; following on a replica that does not hold the ingest lease.",
  })
  state: string;

  @Field()
  feedUrl: string;

  @Field()
  connected: boolean;

  @Field(() => Date, { nullable: true, description: "Highest accepted event time − 2 s, as last committed." })
  watermark: Date | null;

  @Field(() => Float, { nullable: true, description: "Feed clock − newest committed event time, in ms." })
  lagMs: number | null;

  @Field(() => Float, { description: "Trades stored plus quotes applied, since start." })
  accepted: number;

  @Field(() => Float, { description: "Inputs quarantined since start." })
  rejected: number;

  @Field(() => Float, { description: "Trades dropped as already stored, since start." })
  duplicates: number;

  @Field(() => Float, { description: "Trades stored per second, over the last few seconds." })
  ratePerSecond: number;

  @Field(() => String, { nullable: true, description: "This replica's name (REPLICA_NAME)." })
  replica?: string | null;

  @Field(() => String, {
    nullable: true,
    description: "The replica holding the ingest lease, which runs ingest; null while none does.",
  })
  leaseHolder?: string | null;
}

@ObjectType({ description: "A feed input the validator rejected, kept verbatim." })
@Directive("@classified(level: CONFIDENTIAL)")
export class QuarantinedInput {
  @Field(() => ID)
  id: string;

  @Field()
  receivedAt: Date;

  @Field({
    description: "MALFORMED, INVALID_PRICE, INVALID_SIZE, CROSSED_QUOTE, UNKNOWN_SYMBOL, CLOCK_SKEW, LATE, …",
  })
  reason: string;

  @Field(() => String, { nullable: true })
  detail: string | null;

  @Field({ description: "The message or frame exactly as it arrived." })
  raw: string;
}

@ObjectType()
@Directive("@classified(level: CONFIDENTIAL)")
export class QuarantineConnection {
  @Field(() => [QuarantinedInput])
  nodes: QuarantinedInput[];

  @Field(() => PageInfo)
  pageInfo: PageInfo;
}

@ObjectType({ description: "How many inputs were quarantined for one reason (a custodian's view)." })
@Directive("@classified(level: CONFIDENTIAL)")
export class QualityCount {
  @Field()
  reason: string;

  @Field(() => Float)
  count: number;
}
