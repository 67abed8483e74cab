import { Arg, Int, Resolver, Root, Subscription, type SubscribeResolverData } from "type-graphql";
import { BadUserInputError } from "../errors";
import { checkSymbolCount } from "./page";
import { Topic } from "../events/bus";
import { log } from "../log";
import { rowCount, type CommittedTrades } from "../core/trades";
import { delayCutoff } from "../policy/session";
import type { WindowsEvent } from "../windows/window.engine";
import { MoverBasis, RankBy, TOP_PRICE_PERIOD_MS, WindowSize } from "../windows/windows";
import type { Context } from "./context.type";
import { liveStream, type Due, type LiveSpec } from "./live.stream";
import { Quote } from "./quote.type";
import { moversOf, rankingsOf, served } from "../windows/rankings";
import { checkLimit } from "./window.resolver";
import { MoverBoard, WindowAggregate, WindowRanking } from "./window.types";

/** Most rows one WINDOWS event may emit to a windowAggregates subscriber (an hour of catch-up × 50 symbols). */
const MAX_ROWS_PER_EVENT = 20_000;
/** Rankings remembered per subscription to tell a changed correction from an unchanged one. */
const MAX_REMEMBERED = 1000;

/** Fields whose events replace each other: a client that reads slowly is sent only the newest. */
export const CONFLATING: ReadonlySet<string> = new Set(["topSymbols", "topPriceStock", "topMovers"]);

type Data = SubscribeResolverData<unknown, Record<string, unknown>, Context>;

function live<E, K, O>(
  { context }: Data,
  topic: Topic.WINDOWS | Topic.QUOTES,
  spec: LiveSpec<E, K, O>,
): AsyncIterableIterator<O> {
  const events = context.bus.subscribe(topic) as AsyncIterableIterator<unknown> as AsyncIterableIterator<E>;
  return liveStream(events, spec, { policy: context.policy, cutoff: () => delayCutoff(context) });
}

function checkSymbols(ctx: Context, symbols: string[]): Set<string> {
  const set = new Set(symbols);
  checkSymbolCount(set, ctx.config.limits.maxPageSize);
  return set;
}

function quoteOf(t: CommittedTrades, k: number): Quote {
  return {
    id: t.id[k],
    symbol: t.symbol[k],
    eventTime: new Date(t.time[k]),
    seq: String(t.seq[k]),
    price: t.price[k],
    size: t.size[k],
    bid: t.bid[k],
    bidSize: t.bidSize[k],
    ask: t.ask[k],
    askSize: t.askSize[k],
    exchange: t.exchange[k],
    delayed: false,
    source: t.source[k],
    receivedAt: new Date(t.received[k]),
  };
}

/** Window ends of `size` an engine step opened (and, with `revised`, changed), with their events. */
function endsOf(e: WindowsEvent, size: WindowSize, revised: boolean, every?: number): Due<number>[] {
  const ends = [...e.opened, ...(revised ? e.revised : [])]
    .filter((w) => w.size === size)
    .map((w) => w.windowEnd.getTime())
    .filter((end) => !every || end % every === 0);
  return [...new Set(ends)].map((end) => ({ at: end, key: end }));
}

/**
 * Rankings of the windows a step opened or revised: one read per batch of ends. A revision is sent only
 * when it changed the ranking (who, in what order, with what value and revision).
 */
function rankingSpec(
  data: Data,
  what: string,
  q: { size: WindowSize; by: RankBy; limit: number; every?: number },
): LiveSpec<WindowsEvent, number, WindowRanking> {
  const sent = new Map<number, string>();
  return {
    what,
    select(e) {
      if (e.finalUntil) for (const end of sent.keys()) if (end <= e.finalUntil.getTime()) sent.delete(end);
      return endsOf(e, q.size, true, q.every);
    },
    async load(ends, delayed) {
      const wanted = new Set(ends);
      const rows = await data.context.windows.rankings({
        size: q.size,
        by: q.by,
        limit: q.limit,
        from: new Date(Math.min(...wanted)),
        to: new Date(Math.max(...wanted) + 1),
        ...(q.every ? { everyMs: q.every } : {}),
      });
      return rankingsOf(rows, q.size, q.by, delayed).filter((r) => {
        const end = r.windowEnd.getTime();
        if (!wanted.has(end)) return false;
        const signature = r.entries.map((x) => `${x.symbol}:${x.value}:${x.aggregate.revision}`).join(" ");
        if (sent.get(end) === signature) return false;
        sent.set(end, signature);
        if (sent.size > MAX_REMEMBERED) sent.delete(sent.keys().next().value!);
        return true;
      });
    },
  };
}

/** Live windows, rankings, movers and ticks, pushed as the ingest commits and the window engine steps. */
@Resolver()
export class LiveResolver {
  @Subscription(() => Quote, {
    description: "Each trade of the symbols as it is stored.",
    subscribe: (data: Data) => {
      const symbols = checkSymbols(data.context, data.args.symbols as string[]);
      if (!symbols.size) throw new BadUserInputError("Name at least one symbol.", { argument: "symbols" });
      return live<CommittedTrades, Quote, Quote>(data, Topic.QUOTES, {
        what: "quoteTicks",
        select(t) {
          const due: Due<Quote>[] = [];
          for (let k = 0, n = rowCount(t); k < n; k++)
            if (symbols.has(t.symbol[k])) due.push({ at: Date.parse(t.time[k]), key: quoteOf(t, k) });
          return due;
        },
        async load(quotes, delayed) {
          for (const q of quotes) q.delayed = delayed;
          return quotes;
        },
      });
    },
  })
  quoteTicks(@Root() quote: Quote, @Arg("symbols", () => [String]) _symbols: string[]): Quote {
    return quote;
  }

  @Subscription(() => WindowAggregate, {
    description:
      "Each window of the size (of the symbols, when given) as it becomes visible, and again when revised.",
    subscribe: (data: Data) => {
      const size = data.args.size as WindowSize;
      const symbols = data.args.symbols ? checkSymbols(data.context, data.args.symbols as string[]) : null;
      /** Per window end, the symbols revised, or null for the whole window (it opened). */
      type Key = { end: number; symbols: string[] | null };
      return live<WindowsEvent, Key, WindowAggregate>(data, Topic.WINDOWS, {
        what: "windowAggregates",
        select(e) {
          if (symbols && !symbols.size) return [];
          const due: Due<Key>[] = e.opened
            .filter((w) => w.size === size)
            .map((w) => ({ at: w.windowEnd.getTime(), key: { end: w.windowEnd.getTime(), symbols: null } }));
          for (const w of e.revised) {
            const changed = symbols ? w.symbols.filter((s) => symbols.has(s)) : w.symbols;
            if (w.size === size && changed.length)
              due.push({ at: w.windowEnd.getTime(), key: { end: w.windowEnd.getTime(), symbols: changed } });
          }
          return due;
        },
        async load(keys, delayed) {
          const changed = new Map<number, Set<string> | null>();
          for (const k of keys) {
            const had = changed.get(k.end);
            if (had === null) continue;
            changed.set(k.end, k.symbols ? new Set([...(had ?? []), ...k.symbols]) : null);
          }
          const rows = await data.context.windows.page({
            size,
            ...(symbols ? { symbols: [...symbols] } : {}),
            ends: [...changed.keys()].map((end) => new Date(end)),
            order: "ASC",
            limit: MAX_ROWS_PER_EVENT,
          });
          if (rows.length === MAX_ROWS_PER_EVENT)
            log.warn(
              { size, ends: changed.size },
              "windowAggregates: an event's rows cut at the per-event bound",
            );
          return rows
            .filter((r) => changed.get(r.windowEnd.getTime())?.has(r.symbol) ?? true)
            .map((r) => served(r, delayed));
        },
      });
    },
  })
  windowAggregates(
    @Root() aggregate: WindowAggregate,
    @Arg("size", () => WindowSize) _size: WindowSize,
    @Arg("symbols", () => [String], { nullable: true }) _symbols?: string[] | null,
  ): WindowAggregate {
    return aggregate;
  }

  @Subscription(() => WindowRanking, {
    description:
      "The ranking of each new window of the size, and a corrected one when a revision changes it.",
    subscribe: (data: Data) => {
      const q = {
        size: data.args.size as WindowSize,
        by: (data.args.by as RankBy | undefined) ?? RankBy.MEAN,
        limit: checkLimit(data.args.limit as number | null, 3),
      };
      return live(data, Topic.WINDOWS, rankingSpec(data, "topSymbols", q));
    },
  })
  topSymbols(
    @Root() ranking: WindowRanking,
    @Arg("size", () => WindowSize) _size: WindowSize,
    @Arg("by", () => RankBy, { defaultValue: RankBy.MEAN, nullable: true }) _by?: RankBy | null,
    @Arg("limit", () => Int, { defaultValue: 3, nullable: true }) _limit?: number | null,
  ): WindowRanking {
    return ranking;
  }

  @Subscription(() => WindowRanking, {
    description:
      "The top price stock(s) of each 5-minute tumbling window [k·300 s, (k+1)·300 s) as it becomes visible " +
      "(and corrected when a revision changes it).",
    subscribe: (data: Data) => {
      const q = {
        size: WindowSize.FIVE_MINUTES,
        by: (data.args.by as RankBy | undefined) ?? RankBy.MEAN,
        limit: checkLimit(data.args.limit as number | null, 1),
        every: TOP_PRICE_PERIOD_MS,
      };
      return live(data, Topic.WINDOWS, rankingSpec(data, "topPriceStock", q));
    },
  })
  topPriceStock(
    @Root() ranking: WindowRanking,
    @Arg("by", () => RankBy, { defaultValue: RankBy.MEAN, nullable: true }) _by?: RankBy | null,
    @Arg("limit", () => Int, { defaultValue: 1, nullable: true }) _limit?: number | null,
  ): WindowRanking {
    return ranking;
  }

  @Subscription(() => MoverBoard, {
    description:
      "A new board of gainers and losers as each window of the size becomes visible (WINDOW), or with each " +
      "new one-minute window (SESSION, against the previous session's close).",
    subscribe: (data: Data) => {
      const basis = (data.args.basis as MoverBasis | undefined) ?? MoverBasis.WINDOW;
      const size = (data.args.size as WindowSize | undefined) ?? WindowSize.FIVE_MINUTES;
      const limit = checkLimit(data.args.limit as number | null, 10);
      const windows = data.context.windows;
      const session = basis === MoverBasis.SESSION;
      return live<WindowsEvent, number, MoverBoard>(data, Topic.WINDOWS, {
        what: "topMovers",
        select: (e) => endsOf(e, session ? WindowSize.ONE_MINUTE : size, false),
        async load(ends, delayed) {
          // Only the newest board matters when several windows opened at once (catching up).
          const end = Math.max(...ends);
          const rows = session
            ? await windows.sessionMovers(new Date(end - 10_000), 0)
            : await windows.windowMovers(size, new Date(end), 0);
          return [
            {
              basis,
              size: session ? null : size,
              asOf: new Date(end),
              delayed,
              ...moversOf(rows, limit),
            },
          ];
        },
      });
    },
  })
  topMovers(
    @Root() board: MoverBoard,
    @Arg("basis", () => MoverBasis, { defaultValue: MoverBasis.WINDOW, nullable: true })
    _basis?: MoverBasis | null,
    @Arg("size", () => WindowSize, { defaultValue: WindowSize.FIVE_MINUTES, nullable: true })
    _size?: WindowSize | null,
    @Arg("limit", () => Int, { defaultValue: 10, nullable: true }) _limit?: number | null,
  ): MoverBoard {
    return board;
  }
}
