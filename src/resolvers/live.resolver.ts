import { Repeater } from "@graphql-yoga/subscription";
import { Arg, Int, Resolver, Root, Subscription, type SubscribeResolverData } from "type-graphql";
import { BadUserInputError } from "../errors";
import { checkSymbolCount } from "./page";
import { Topic, type EventBus } from "../events/bus";
import { rowCount, type CommittedTrades } from "../core/trades";
import { delayCutoff } from "../policy/session";
import type { WindowsEvent } from "../windows/window.engine";
import { MoverBasis, RankBy, TOP_PRICE_PERIOD_MS, WindowSize } from "../windows/windows";
import type { Context } from "./context.type";
import { liveStream, RESYNCED, tailStream, type Due, type LiveSpec, type TailSpec } from "./live.stream";
import { Quote, tickAfter, tickCursor, toQuote } from "./quote.type";
import { rankingsOf, served, type ServedWindow } from "../windows/rankings";
import {
  checkLimit,
  latestMovers,
  latestRanking,
  windowAfter,
  windowPositionOf,
  windowStreamCursor,
} from "./window.resolver";
import { MoverBoard, WindowAggregate, WindowRanking } from "./window.types";
import type { WindowPosition } from "../db/windows.repo";

/** Rankings remembered per subscription to tell a changed correction from an unchanged one. */
const MAX_REMEMBERED = 1000;

/** Fields whose events replace each other: a client that reads slowly is sent only the newest. */
export const CONFLATING: ReadonlySet<string> = new Set(["topSymbols", "topPriceStock", "topMovers"]);

type Data = SubscribeResolverData<unknown, Record<string, unknown>, Context>;

/** The RESYNC events of the bus, as the live streams' marker. */
function resyncs(bus: EventBus): AsyncIterableIterator<typeof RESYNCED> {
  const events = bus.subscribe(Topic.RESYNC);
  return {
    next: async (): Promise<IteratorResult<typeof RESYNCED>> => {
      const r = await events.next();
      return r.done ? { done: true, value: undefined } : { done: false, value: RESYNCED };
    },
    return: async (): Promise<IteratorResult<typeof RESYNCED>> => {
      await events.return?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** The topic's events, with RESYNC when the stream re-reads on it. */
function eventsOf<E>(
  bus: EventBus,
  topic: Topic.WINDOWS | Topic.QUOTES,
  resync: boolean,
): AsyncIterableIterator<E | typeof RESYNCED> {
  const events = bus.subscribe(topic) as AsyncIterableIterator<unknown> as AsyncIterableIterator<E>;
  return resync
    ? (Repeater.merge([events, resyncs(bus)]) as AsyncIterableIterator<E | typeof RESYNCED>)
    : events;
}

function options(context: Context) {
  return {
    policy: context.policy,
    cutoff: () => delayCutoff(context),
    onItem: (mark: Context["liveMark"], cursor?: string) => {
      context.liveMark = mark;
      context.liveCursor = cursor;
    },
  };
}

function live<E, K, O>(
  { context }: Data,
  topic: Topic.WINDOWS | Topic.QUOTES,
  spec: LiveSpec<E, K, O>,
): AsyncIterableIterator<O> {
  return liveStream(eventsOf<E>(context.bus, topic, !!spec.initial), spec, options(context));
}

function tail<E, P, O>(
  { context }: Data,
  topic: Topic.WINDOWS | Topic.QUOTES,
  spec: TailSpec<E, P, O>,
): AsyncIterableIterator<O> {
  return tailStream(eventsOf<E>(context.bus, topic, true), spec, options(context));
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
    eventTime: t.time[k],
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
    receivedAt: new Date(t.received[k]).toISOString(),
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
  /**
   * The window of the current value sent first: events of older windows still on their way when it was
   * read are not sent after it (only corrections of what was sent).
   */
  let floor = -Infinity;
  /** Whether the ranking differs from what was sent for its window (remembers it when it does). */
  const changed = (r: WindowRanking): boolean => {
    const end = r.windowEnd.getTime();
    if (end < floor && !sent.has(end)) return false;
    const signature = r.entries.map((x) => `${x.symbol}:${x.value}:${x.aggregate.revision}`).join(" ");
    if (sent.get(end) === signature) return false;
    sent.set(end, signature);
    if (sent.size > MAX_REMEMBERED) sent.delete(sent.keys().next().value!);
    return true;
  };
  return {
    what,
    async initial(cutoff) {
      const ranking = await latestRanking(
        data.context,
        { size: q.size, by: q.by, limit: q.limit, ...(q.every ? { everyMs: q.every } : {}) },
        cutoff,
        cutoff !== null,
      );
      if (!ranking || !changed(ranking)) return [];
      floor = Math.max(floor, ranking.windowEnd.getTime());
      return [ranking];
    },
    markOf: (r) => ({ at: r.windowEnd.getTime(), id: "" }),
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
      return rankingsOf(rows, q.size, q.by, delayed).filter(
        (r) => wanted.has(r.windowEnd.getTime()) && changed(r),
      );
    },
  };
}

/** Live windows, rankings, movers and ticks, pushed as the ingest commits and the window engine steps. */
@Resolver()
export class LiveResolver {
  @Subscription(() => Quote, {
    description:
      "Each trade of the symbols as it is stored. With `after` (a Quote.cursor), first the trades of the " +
      "symbols stored after that one, then the live ones: none skipped, none twice.",
    subscribe: (data: Data) => {
      const symbols = checkSymbols(data.context, data.args.symbols as string[]);
      if (!symbols.size) throw new BadUserInputError("Name at least one symbol.", { argument: "symbols" });
      const after = data.args.after as string | null | undefined;
      if (after) return resumedTicks(data, [...symbols], tickAfter(after));
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
  quoteTicks(
    @Root() quote: Quote,
    @Arg("symbols", () => [String]) _symbols: string[],
    @Arg("after", () => String, {
      nullable: true,
      description: "Resume after this Quote.cursor: the trades stored since are sent first.",
    })
    _after?: string | null,
  ): Quote {
    return quote;
  }

  @Subscription(() => WindowAggregate, {
    description:
      "Windows of the size (of the symbols, when given) as they are written: first the rows of the latest " +
      "visible window, then each window as it becomes visible, and again when revised. With `after` (a " +
      "WindowAggregate.cursor), instead first every row written after that one, then the live ones: none " +
      "skipped, none twice.",
    subscribe: (data: Data) => {
      const size = data.args.size as WindowSize;
      const symbols = data.args.symbols ? checkSymbols(data.context, data.args.symbols as string[]) : null;
      const after = data.args.after ? windowAfter(data.args.after as string) : null;
      const windows = data.context.windows;
      const only = symbols && [...symbols];
      return tail<WindowsEvent, WindowPosition, ServedWindow>(data, Topic.WINDOWS, {
        what: "windowAggregates",
        async start(cutoff) {
          if (after || only?.length === 0) return { items: [], position: after };
          const rows = await windows.latestWindow(size, only, cutoff);
          if (!rows.length) return { items: [], position: null };
          // After the current rows as first written: their later revisions, and newer windows, follow.
          const first = rows.reduce((a, b) => (BigInt(b.updatedUs) < BigInt(a.updatedUs) ? b : a));
          const position = { ...windowPositionOf(rows.at(-1)!), updatedUs: first.updatedUs };
          return { items: rows.map((r) => served(r, cutoff !== null)), position };
        },
        async read(position, limit) {
          if (only?.length === 0) return [];
          const rows = await windows.changes({ size, symbols: only, after: position, limit });
          const delayed = delayCutoff(data.context) !== null;
          return rows.map((r) => served(r, delayed));
        },
        positionOf: windowPositionOf,
        timeOf: (w) => w.windowEnd.getTime(),
        concerns: (e) =>
          e.opened.some((w) => w.size === size) ||
          e.revised.some((w) => w.size === size && (!symbols || w.symbols.some((s) => symbols.has(s)))),
        markOf: (w) => ({ at: w.windowEnd.getTime(), id: w.symbol }),
        cursorOf: (w) => windowStreamCursor(windowPositionOf(w)),
      });
    },
  })
  windowAggregates(
    @Root() aggregate: WindowAggregate,
    @Arg("size", () => WindowSize) _size: WindowSize,
    @Arg("symbols", () => [String], { nullable: true }) _symbols?: string[] | null,
    @Arg("after", () => String, {
      nullable: true,
      description: "Resume after this WindowAggregate.cursor: the rows written since are sent first.",
    })
    _after?: string | null,
  ): WindowAggregate {
    return aggregate;
  }

  @Subscription(() => WindowRanking, {
    description:
      "The latest ranking of the size at once (as of the caller's delay cutoff without REALTIME), then the " +
      "ranking of each new window, and a corrected one when a revision changes it.",
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
      "The top price stock(s) of the latest 5-minute tumbling window [k·300 s, (k+1)·300 s) at once (as of " +
      "the caller's delay cutoff without REALTIME), then of each one as it becomes visible (and corrected " +
      "when a revision changes it).",
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
      "The latest board of gainers and losers at once, then a new one as each window of the size becomes " +
      "visible (WINDOW), or with each new one-minute window (SESSION, against the previous session's close).",
    subscribe: (data: Data) => {
      const basis = (data.args.basis as MoverBasis | undefined) ?? MoverBasis.WINDOW;
      const size = (data.args.size as WindowSize | undefined) ?? WindowSize.FIVE_MINUTES;
      const limit = checkLimit(data.args.limit as number | null, 10);
      const session = basis === MoverBasis.SESSION;
      let last = "";
      /** The time of the current value sent first: boards older than it are not sent after it. */
      let floor = -Infinity;
      /** A board unless it is the one sent last (the current value sent again, or re-read unchanged). */
      const fresh = (board: MoverBoard): MoverBoard[] => {
        const signature = JSON.stringify([board.asOf, board.gainers, board.losers, board.reason]);
        if (signature === last || board.asOf.getTime() < floor) return [];
        last = signature;
        return [board];
      };
      return live<WindowsEvent, number, MoverBoard>(data, Topic.WINDOWS, {
        what: "topMovers",
        async initial(cutoff) {
          const board = await latestMovers(data.context, { basis, size, limit, minVolume: 0 }, cutoff);
          const sent = fresh(board);
          // A board read from stored data (not the empty one of before any window) is a floor.
          if (sent.length && !board.reason) floor = Math.max(floor, board.asOf.getTime());
          return sent;
        },
        markOf: (b) => ({ at: b.asOf.getTime(), id: "" }),
        select: (e) => endsOf(e, session ? WindowSize.ONE_MINUTE : size, false),
        async load(ends, delayed) {
          // Only the newest board matters when several windows opened at once (catching up). The board
          // as of that window: read with the cutoff at its end.
          const end = new Date(Math.max(...ends));
          const board = await latestMovers(data.context, { basis, size, limit, minVolume: 0 }, end);
          return fresh({ ...board, delayed });
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

/**
 * quoteTicks resumed after a cursor: the trades stored after it, read in the order stored, then the live
 * ones (taken from events once caught up, for a caller with REALTIME; read, for one without).
 */
function resumedTicks(data: Data, symbols: string[], afterId: string): AsyncIterableIterator<Quote> {
  const wanted = new Set(symbols);
  const market = data.context.market;
  return tail<CommittedTrades, bigint, Quote>(data, Topic.QUOTES, {
    what: "quoteTicks",
    start: async () => ({ items: [], position: BigInt(afterId) }),
    async read(position, limit) {
      const rows = await market.quotesAfter(symbols, position === null ? null : String(position), limit);
      const delayed = delayCutoff(data.context) !== null;
      return rows.map((r) => toQuote(r, delayed));
    },
    positionOf: (q) => BigInt(q.id),
    timeOf: (q) => Date.parse(q.eventTime),
    // An event without rows stands for rows stored but not carried: read them.
    concerns: (t) => rowCount(t) === 0 || t.symbol.some((s) => wanted.has(s)),
    itemsOf(t) {
      if (rowCount(t) === 0) return null;
      const out: Quote[] = [];
      for (let k = 0, n = rowCount(t); k < n; k++) if (wanted.has(t.symbol[k])) out.push(quoteOf(t, k));
      return out;
    },
    after: (a, b) => a > b,
    cursorOf: (q) => tickCursor(q.id),
  });
}
