import { Arg, Args, Ctx, Float, Int, Query, Resolver } from "type-graphql";
import { BadUserInputError } from "../errors";
import { delayCutoff } from "../policy/session";
import { MoverBasis, RankBy, TOP_PRICE_PERIOD_MS, WindowSize, type WindowRow } from "../windows/windows";
import { moversOf, rankingsOf, served } from "../windows/rankings";
import type { Context } from "./context.type";
import {
  connectionOf,
  decodeCursor,
  encodeCursor,
  EPOCH_MS_PART,
  rangePage,
  RangePageArgs,
  SYMBOL_PART,
} from "./page";
import { MoverBoard, WindowAggregateConnection, WindowRanking } from "./window.types";

/** Most windows one history query may span (about 2.8 hours of 10-second hops). */
const MAX_HISTORY_WINDOWS = 1000;
/** Most entries a ranking or mover board may ask for. */
const MAX_RANK_LIMIT = 100;

const windowCursor = (w: WindowRow) => encodeCursor([String(w.windowEnd.getTime()), w.symbol]);

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
  ): Promise<WindowAggregateConnection> {
    const { size: limit, order, symbols, from, to } = rangePage(args, ctx.config.limits.maxPageSize);
    const cutoff = delayCutoff(ctx);
    const q: Parameters<Context["windows"]["page"]>[0] = { size, order, limit: limit + 1 };
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
    const end = await ctx.windows.latestEnd(size, bound);
    if (!end) return null;
    const rows = await ctx.windows.rankings({
      size,
      by: by ?? RankBy.MEAN,
      limit: n,
      from: end,
      to: new Date(end.getTime() + 1),
    });
    return rankingsOf(rows, size, by ?? RankBy.MEAN, cutoff !== null)[0] ?? null;
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
    const cutoff = delayCutoff(ctx);
    const delayed = cutoff !== null;
    if ((basis ?? MoverBasis.WINDOW) === MoverBasis.SESSION) {
      const pane = await ctx.windows.latestPane(cutoff && new Date(cutoff.getTime() - 10_000));
      if (!pane)
        return {
          basis: MoverBasis.SESSION,
          size: null,
          asOf: cutoff ?? ctx.clock.now(),
          gainers: [],
          losers: [],
          delayed,
        };
      const asOf = new Date(pane.getTime() + 10_000);
      return {
        basis: MoverBasis.SESSION,
        size: null,
        asOf,
        delayed,
        ...moversOf(await ctx.windows.sessionMovers(pane, min), n),
      };
    }
    const s = size ?? WindowSize.FIVE_MINUTES;
    const end = await ctx.windows.latestEnd(s, cutoff);
    if (!end)
      return {
        basis: MoverBasis.WINDOW,
        size: s,
        asOf: cutoff ?? ctx.clock.now(),
        gainers: [],
        losers: [],
        delayed,
      };
    return {
      basis: MoverBasis.WINDOW,
      size: s,
      asOf: end,
      delayed,
      ...moversOf(await ctx.windows.windowMovers(s, end, min), n),
    };
  }
}
