import { Arg, Ctx, Int, Query, Resolver } from "type-graphql";
import type { QuarantineRow } from "../db/quarantine.repo";
import { BadUserInputError } from "../errors";
import type { IngestStatus } from "../ingest/ingest";
import type { ReplicaIngestStatus } from "../ingest/lease";
import { delayCutoff } from "../policy/session";
import type { Context } from "./context.type";
import { IngestStatusType, QualityCount, QuarantineConnection } from "./ingest.types";
import { checkPageSize, connectionOf, decodeCursor, encodeCursor, ID_PART } from "./page";

@Resolver()
export class IngestResolver {
  @Query(() => IngestStatusType, {
    nullable: true,
    description:
      "The ingest loop's state and counts since start (state following on a replica that does not hold the ingest lease); null with ingest off.",
  })
  ingestStatus(@Ctx() ctx: Context): IngestStatus | ReplicaIngestStatus | null {
    return ctx.ingest.status();
  }

  @Query(() => QuarantineConnection, {
    nullable: true,
    description:
      "Rejected feed input, newest first, optionally of one reason; paged by cursor. It holds trades and quotes: without REALTIME, only what was received DELAY_SECONDS ago on the market clock is served.",
  })
  async quarantine(
    @Ctx() ctx: Context,
    @Arg("reason", () => String, { nullable: true }) reason?: string | null,
    @Arg("first", () => Int, { defaultValue: 100, nullable: true }) first?: number | null,
    @Arg("after", () => String, { nullable: true }) after?: string | null,
  ): Promise<QuarantineConnection> {
    const size = checkPageSize(first ?? 100, ctx.config.limits.maxPageSize);
    const beforeId = after ? decodeCursor(after, [ID_PART])[0] : undefined;
    // Rejected input holds trades and quotes: without REALTIME it is market data served delayed.
    const notAfter = delayCutoff(ctx) ?? undefined;
    const rows = await ctx.ingest.quarantine.page({ reason, beforeId, notAfter, limit: size + 1 });
    return connectionOf(rows, size, (r: QuarantineRow) => encodeCursor([r.id]));
  }

  @Query(() => [QualityCount], { description: "Quarantined inputs per reason, received in [from, to)." })
  dataQuality(
    @Ctx() ctx: Context,
    @Arg("from", () => Date, { nullable: true }) from?: Date | null,
    @Arg("to", () => Date, { nullable: true }) to?: Date | null,
  ): Promise<QualityCount[]> {
    if (from && to && from > to)
      throw new BadUserInputError("from must not be after to.", { argument: "from" });
    return ctx.ingest.quarantine.countsByReason(from, to);
  }
}
