import type { GraphQLResolveInfo } from "graphql";
import { Arg, Args, Ctx, FieldResolver, Float, Info, Int, Query, Resolver, Root } from "type-graphql";
import { BadUserInputError } from "../errors";
import { delayCutoff } from "../policy/session";
import { MoverBasis, RankBy, TOP_PRICE_PERIOD_MS, WindowSize, type WindowRow } from "../windows/windows";
import type { WindowPosition } from "../db/windows.repo";
import { moversOf, rankingsOf, served } from "../windows/rankings";
import type { Context } from "./context.type";
import {
  connectionOf,
  decodeCursor,
  encodeCursor,
  EPOCH_MS_PART,
  EPOCH_US_PART,
  selectedColumns,
  rangePage,
  RangePageArgs,
  SYMBOL_PART,
} from "./page";
import { MoverBoard, WindowAggregate, WindowAggregateConnection, WindowRanking } from "./window.types";

/** Most windows one history query may span (about 2.8 hours of 10-second hops). */
const MAX_HISTORY_WINDOWS = 1000;
/** Most entries a ranking or mover board may ask for. */
const MAX_RANK_LIMIT = 100;

const windowCursor = (w: WindowRow) => encodeCursor([String(w.windowEnd.getTime()), w.symbol]);

/** A window's position in windowAggregates streams (see `WindowsRepo.changes`). */
export const windowPositionOf = (w: WindowRow): WindowPosition => ({
  updatedUs: w.updatedUs,
  endMs: String(w.windowEnd.getTime()),
  symbol: w.symbol,
});

export const windowStreamCursor = (p: WindowPosition): string =>
  encodeCursor(["w", p.updatedUs, p.endMs, p.symbol]);

/** What each field of WindowAggregate reads of its row (see selectedColumns). */
const WINDOW_FIELD_READS: Record<string, (keyof WindowRow)[]> = {
  __typename: [],
  delayed: [],
  cursor: ["updatedUs", "windowEnd", "symbol"],
  symbol: ["symbol"],
  size: ["size"],
  windowStart: ["windowStart"],
  windowEnd: ["windowEnd"],
  open: ["open"],
  high: ["high"],
  low: ["low"],
  close: ["close"],
  mean: ["mean"],
  vwap: ["vwap"],
  volume: ["volume"],
  tickCount: ["tickCount"],
  revision: ["revision"],
  final: ["final"],
  partial: ["partial"],
  coveredFrom: ["coveredFrom"],
};

/** The position in a windowAggregates stream cursor; BAD_USER_INPUT when it is not one. */
export function windowAfter(cursor: string): WindowPosition {
  const [, updatedUs, endMs, symbol] = decodeCursor(cursor, [
    { tag: "w" },
    EPOCH_US_PART,
    EPOCH_MS_PART,
    SYMBOL_PART,
  ]);
  return { updatedUs, endMs, symbol };
}

/** The ranking of the latest window ending at or before `bound` (any, when null); null before any window. */
export async function latestRanking(
  ctx: Context,
  q: { size: WindowSize; by: RankBy; limit: number; everyMs?: number },
  bound: Date | null,
  delayed: boolean,
): Promise<WindowRanking | null> {
  const end = await ctx.windows.latestEnd(q.size, bound, q.everyMs);
  if (!end) return null;
  const rows = await ctx.windows.rankings({
    size: q.size,
    by: q.by,
    limit: q.limit,
    from: end,
    to: new Date(end.getTime() + 1),
    ...(q.everyMs ? { everyMs: q.everyMs } : {}),
  });
  return rankingsOf(rows, q.size, q.by, delayed)[0] ?? null;
}

/** Why a SESSION board is empty, when it is for want of a previous session. */
const NO_PREVIOUS_SESSION =
  "No previous session's close yet: no trade was stored before this UTC day began, so there is no close " +
  "to compare with. Session movers appear once a session has closed.";

/** The latest mover board the caller may see (`cutoff`: the newest time it may see, null for real time). */
export async function latestMovers(
  ctx: Context,
  q: { basis: MoverBasis; size: WindowSize; limit: number; minVolume: number },
  cutoff: Date | null,
): Promise<MoverBoard> {
  const delayed = cutoff !== null;
  if (q.basis === MoverBasis.SESSION) {
    const pane = await ctx.windows.latestPane(cutoff && new Date(cutoff.getTime() - 10_000));
    const asOf = pane ? new Date(pane.getTime() + 10_000) : (cutoff ?? ctx.clock.now());
    const board = { basis: MoverBasis.SESSION, size: null, asOf, delayed, reason: null as string | null };
    const movers = pane ? moversOf(await ctx.windows.sessionMovers(pane, q.minVolume), q.limit) : null;
    if (!movers?.gainers.length && !movers?.losers.length) {
      const day = new Date(Math.floor(asOf.getTime() / 86_400_000) * 86_400_000);
      if (!(await ctx.windows.tradedBefore(day))) board.reason = NO_PREVIOUS_SESSION;
    }
    return { ...board, gainers: movers?.gainers ?? [], losers: movers?.losers ?? [] };
  }
  const end = await ctx.windows.latestEnd(q.size, cutoff);
  if (!end)
    return {
      basis: MoverBasis.WINDOW,
      size: q.size,
      asOf: cutoff ?? ctx.clock.now(),
      gainers: [],
      losers: [],
      delayed,
      reason: "No window of this size is visible yet.",
    };
  return {
    basis: MoverBasis.WINDOW,
    size: q.size,
    asOf: end,
    delayed,
    reason: null,
    ...moversOf(await ctx.windows.windowMovers(q.size, end, q.minVolume), q.limit),
  };
}

export function checkLimit(limit: number | null | undefined, fallback: number): number {
  const n = limit ?? fallback;
  if (!Number.isInteger(n) || n < 1 || n > MAX_RANK_LIMIT) {
    throw new BadUserInputError(`limit must be between 1 and ${MAX_RANK_LIMIT}, got ${n}.`, {
      argument: "limit",
    });
  }
  return n;
}

function checkSpan(from: Date, to: Date, stepMs: number): void {
  if (from > to) throw new BadUserInputError("from must not be after to.", { argument: "from" });
  if ((to.getTime() - from.getTime()) / stepMs > MAX_HISTORY_WINDOWS) {
    throw new BadUserInputError(`That range spans more than ${MAX_HISTORY_WINDOWS} windows: narrow it.`, {
      argument: "to",
    });
  }
}

/** Windows, rankings and movers: all read from stored results, never computed from raw quotes here. */
@Resolver()
export class WindowResolver {
  @Query(() => WindowAggregateConnection, {
    description:
      "Stored window aggregates, newest window first by default; from/to select windows by their end.",
  })
  async windowAggregates(
    @Ctx() ctx: Context,
    @Arg("size", () => WindowSize) size: WindowSize,
    @Args() args: RangePageArgs,
    @Info() info: GraphQLResolveInfo,
  ): Promise<WindowAggregateConnection> {
    const { size: limit, order, symbols, from, to } = rangePage(args, ctx.config.limits.maxPageSize);
    const cutoff = delayCutoff(ctx);
    const q: Parameters<Context["windows"]["page"]>[0] = {
      size,
      order,
      limit: limit + 1,
      columns: selectedColumns(info, WINDOW_FIELD_READS, ["windowEnd", "symbol"]),
    };
    if (symbols) q.symbols = symbols;
    if (from) q.from = from;
    if (to) q.to = to;
    if (cutoff) q.notAfter = cutoff;
    if (args.after) {
      const [endMs, symbol] = decodeCursor(args.after, [EPOCH_MS_PART, SYMBOL_PART]);
      q.after = { endMs, symbol };
    }
    const rows = q.symbols?.length === 0 ? [] : await ctx.windows.page(q);
    return connectionOf(
      rows.map((r) => served(r, cutoff !== null)),
      limit,
      windowCursor,
    );
  }

  @Query(() => WindowRanking, {
    nullable: true,
    description:
      "The top symbols of the latest window ending at or before `at` (the latest window when omitted).",
  })
  async topSymbols(
    @Ctx() ctx: Context,
    @Arg("size", () => WindowSize) size: WindowSize,
    @Arg("by", () => RankBy, { defaultValue: RankBy.MEAN, nullable: true }) by?: RankBy | null,
    @Arg("limit", () => Int, { defaultValue: 3, nullable: true }) limit?: number | null,
    @Arg("at", () => Date, { nullable: true }) at?: Date | null,
  ): Promise<WindowRanking | null> {
    const n = checkLimit(limit, 3);
    const cutoff = delayCutoff(ctx);
    const bound = cutoff && (!at || at > cutoff) ? cutoff : (at ?? null);
    return latestRanking(ctx, { size, by: by ?? RankBy.MEAN, limit: n }, bound, cutoff !== null);
  }

  @Query(() => [WindowRanking], {
    description: "The top symbols of every window ending in [from, to), oldest first.",
  })
  async topSymbolsHistory(
    @Ctx() ctx: Context,
    @Arg("size", () => WindowSize) size: WindowSize,
    @Arg("from", () => Date) from: Date,
    @Arg("to", () => Date) to: Date,
    @Arg("by", () => RankBy, { defaultValue: RankBy.MEAN, nullable: true }) by?: RankBy | null,
    @Arg("limit", () => Int, { defaultValue: 3, nullable: true }) limit?: number | null,
  ): Promise<WindowRanking[]> {
    const n = checkLimit(limit, 3);
    checkSpan(from, to, 10_000);
    const cutoff = delayCutoff(ctx);
    const until = cutoff && cutoff.getTime() + 1 < to.getTime() ? new Date(cutoff.getTime() + 1) : to;
    const rows = await ctx.windows.rankings({ size, by: by ?? RankBy.MEAN, limit: n, from, to: until });
    return rankingsOf(rows, size, by ?? RankBy.MEAN, cutoff !== null);
  }

  @Query(() => [WindowRanking], {
    description:
      "The top price stock(s) of every 5-minute tumbling window [k·300 s, (k+1)·300 s) ending in [from, to), " +
      "oldest first; without from/to, the last hour up to the latest window.",
  })
  async topPriceStocks(
    @Ctx() ctx: Context,
    @Arg("by", () => RankBy, { defaultValue: RankBy.MEAN, nullable: true }) by?: RankBy | null,
    @Arg("limit", () => Int, { defaultValue: 1, nullable: true }) limit?: number | null,
    @Arg("from", () => Date, { nullable: true }) from?: Date | null,
    @Arg("to", () => Date, { nullable: true }) to?: Date | null,
  ): Promise<WindowRanking[]> {
    const n = checkLimit(limit, 1);
    const size = WindowSize.FIVE_MINUTES;
    const cutoff = delayCutoff(ctx);
    let until = to ?? null;
    if (!until) {
      const latest = await ctx.windows.latestEnd(size, cutoff, TOP_PRICE_PERIOD_MS);
      if (!latest) return [];
      until = new Date(latest.getTime() + 1);
    }
    if (cutoff && cutoff.getTime() + 1 < until.getTime()) until = new Date(cutoff.getTime() + 1);
    const since = from ?? new Date(until.getTime() - 12 * TOP_PRICE_PERIOD_MS);
    checkSpan(since, until, TOP_PRICE_PERIOD_MS);
    const rows = await ctx.windows.rankings({
      size,
      by: by ?? RankBy.MEAN,
      limit: n,
      from: since,
      to: until,
      everyMs: TOP_PRICE_PERIOD_MS,
    });
    return rankingsOf(rows, size, by ?? RankBy.MEAN, cutoff !== null);
  }

  @Query(() => MoverBoard, {
    description: "Biggest gainers and losers: over the latest window, or since the previous session's close.",
  })
  async topMovers(
    @Ctx() ctx: Context,
    @Arg("basis", () => MoverBasis, { defaultValue: MoverBasis.WINDOW, nullable: true })
    basis?: MoverBasis | null,
    @Arg("size", () => WindowSize, { defaultValue: WindowSize.FIVE_MINUTES, nullable: true })
    size?: WindowSize | null,
    @Arg("limit", () => Int, { defaultValue: 10, nullable: true }) limit?: number | null,
    @Arg("minVolume", () => Float, { defaultValue: 0, nullable: true }) minVolume?: number | null,
  ): Promise<MoverBoard> {
    const n = checkLimit(limit, 10);
    const min = minVolume ?? 0;
    if (!Number.isFinite(min) || min < 0)
      throw new BadUserInputError("minVolume must be 0 or more.", { argument: "minVolume" });
    const q = {
      basis: basis ?? MoverBasis.WINDOW,
      size: size ?? WindowSize.FIVE_MINUTES,
      limit: n,
      minVolume: min,
    };
    return latestMovers(ctx, q, delayCutoff(ctx));
  }
}

/** Fields of a window aggregate computed from its row. */
@Resolver(() => WindowAggregate)
export class WindowAggregateResolver {
  @FieldResolver(() => String)
  cursor(@Root() w: WindowAggregate): string {
    return windowStreamCursor(windowPositionOf(w as unknown as WindowRow));
  }
}
