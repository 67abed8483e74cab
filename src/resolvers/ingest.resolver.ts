import { GraphQLSchema, type GraphQLResolveInfo } from "graphql";
import { Arg, Ctx, Info, Int, Query, Resolver } from "type-graphql";
import type { QuarantineRepo, QuarantineRow } from "../db/quarantine.repo";
import { BadUserInputError } from "../errors";
import type { IngestStatus } from "../ingest/ingest";
import type { ReplicaIngestStatus } from "../ingest/lease";
import type { Context } from "./context.type";
import { IngestStatusType, QualityCount, QuarantineConnection } from "./ingest.types";
import { checkPageSize, connectionOf, decodeCursor, encodeCursor, ID_PART, pagedComplexity } from "./page";

/** What the ingest fields read: the running loop (null when ingest is off) and the quarantine table. */
export interface IngestServices {
  status(): IngestStatus | ReplicaIngestStatus | null;
  quarantine: QuarantineRepo;
}

const KEY = "tickgraphIngest";

/** The schema carries its ingest services, so that every schema built (and its policy wrapper) finds its own. */
export function withIngestServices(schema: GraphQLSchema, services: IngestServices): GraphQLSchema {
  return new GraphQLSchema({
    ...schema.toConfig(),
    extensions: { ...schema.extensions, [KEY]: services },
  });
}

function servicesOf(info: GraphQLResolveInfo): IngestServices | null {
  return (info.schema.extensions[KEY] as IngestServices | undefined) ?? null;
}

function required(info: GraphQLResolveInfo): IngestServices {
  const s = servicesOf(info);
  if (!s) throw new Error("this schema was built without ingest services");
  return s;
}

@Resolver()
export class IngestResolver {
  @Query(() => IngestStatusType, {
    nullable: true,
    description:
      "The ingest loop's state and counts since start (state following on a replica that does not hold the ingest lease); null with ingest off.",
  })
  ingestStatus(@Info() info: GraphQLResolveInfo): IngestStatus | ReplicaIngestStatus | null {
    return servicesOf(info)?.status() ?? null;
  }

  @Query(() => QuarantineConnection, {
    nullable: true,
    description: "Rejected feed input, newest first, optionally of one reason; paged by cursor.",
    complexity: pagedComplexity,
  })
  async quarantine(
    @Ctx() ctx: Context,
    @Info() info: GraphQLResolveInfo,
    @Arg("reason", () => String, { nullable: true }) reason?: string | null,
    @Arg("first", () => Int, { defaultValue: 100, nullable: true }) first?: number | null,
    @Arg("after", () => String, { nullable: true }) after?: string | null,
  ): Promise<QuarantineConnection> {
    const size = checkPageSize(first ?? 100, ctx.config.limits.maxPageSize);
    const beforeId = after ? decodeCursor(after, [ID_PART])[0] : undefined;
    const rows = await required(info).quarantine.page({ reason, beforeId, limit: size + 1 });
    return connectionOf(rows, size, (r: QuarantineRow) => encodeCursor([r.id]));
  }

  @Query(() => [QualityCount], { description: "Quarantined inputs per reason, received in [from, to)." })
  dataQuality(
    @Info() info: GraphQLResolveInfo,
    @Arg("from", () => Date, { nullable: true }) from?: Date | null,
    @Arg("to", () => Date, { nullable: true }) to?: Date | null,
  ): Promise<QualityCount[]> {
    if (from && to && from > to)
      throw new BadUserInputError("from must not be after to.", { argument: "from" });
    return required(info).quarantine.countsByReason(from, to);
  }
}
