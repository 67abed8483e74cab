import type { GraphQLResolveInfo } from "graphql";
import { Arg, Args, Ctx, FieldResolver, Info, Query, Resolver, Root } from "type-graphql";
import type { QuotePageQuery, QuoteRow } from "../db/market.repo";
import { delayCutoff } from "../policy/session";
import type { Context } from "./context.type";
import { Instrument } from "./instrument.type";
import {
  checkSymbolCount,
  connectionOf,
  decodeCursor,
  encodeCursor,
  EPOCH_US_PART,
  ID_PART,
  selectedColumns,
  rangePage,
  RangePageArgs,
} from "./page";
import { Quote, QuoteConnection, tickCursor, toQuote } from "./quote.type";

const quoteCursor = (row: QuoteRow) => encodeCursor([row.eventUs, row.id]);

/** What each field of Quote reads of its row (see selectedColumns). */
const QUOTE_FIELD_READS: Record<string, (keyof QuoteRow)[]> = {
  __typename: [],
  delayed: [],
  id: ["id"],
  cursor: ["id"],
  symbol: ["symbol"],
  eventTime: ["eventTime"],
  seq: ["seq"],
  price: ["price"],
  size: ["size"],
  bid: ["bid"],
  bidSize: ["bidSize"],
  ask: ["ask"],
  askSize: ["askSize"],
  exchange: ["exchange"],
  source: ["source"],
  receivedAt: ["receivedAt"],
  instrument: ["symbol", "exchange"],
};

@Resolver(() => Quote)
export class QuoteResolver {
  @Query(() => QuoteConnection, {
    description: "Stored quotes, newest first by default, paged by cursor.",
  })
  async quotes(
    @Ctx() ctx: Context,
    @Args() args: RangePageArgs,
    @Info() info: GraphQLResolveInfo,
  ): Promise<QuoteConnection> {
    const { size, order, symbols, from, to } = rangePage(args, ctx.config.limits.maxPageSize);
    const q: QuotePageQuery = {
      order,
      limit: size + 1,
      columns: selectedColumns(info, QUOTE_FIELD_READS, ["eventUs", "id"]),
    };
    if (symbols) q.symbols = symbols;
    if (from) q.from = from;
    if (to) q.to = to;
    const cutoff = delayCutoff(ctx);
    if (cutoff) q.notAfter = cutoff;
    if (args.after) {
      const [eventUs, id] = decodeCursor(args.after, [EPOCH_US_PART, ID_PART]);
      q.after = { eventUs, id };
    }
    if (q.symbols?.length === 0)
      return { edges: [], nodes: [], pageInfo: { hasNextPage: false, endCursor: null } };
    const rows = await ctx.market.quotePage(q);
    const delayed = cutoff !== null;
    return connectionOf(
      rows.map((row) => toQuote(row, delayed)),
      size,
      quoteCursor,
    );
  }

  @Query(() => [Quote], {
    description: "The latest quote of each symbol (all instruments when symbols is omitted).",
  })
  async latestQuotes(
    @Ctx() ctx: Context,
    @Arg("symbols", () => [String], { nullable: true }) symbols?: string[] | null,
  ): Promise<Quote[]> {
    const wanted = symbols ? [...new Set(symbols)] : (await ctx.market.instruments()).map((i) => i.symbol);
    checkSymbolCount(wanted, ctx.config.limits.maxPageSize);
    const rows = await Promise.all(wanted.map((symbol) => ctx.loaders.latestQuote.load(symbol)));
    // The loader applies the same cutoff, asked when its batch runs.
    const delayed = delayCutoff(ctx) !== null;
    return rows.filter((r): r is QuoteRow => r !== null).map((r) => toQuote(r, delayed));
  }

  @FieldResolver(() => String)
  cursor(@Root() quote: Quote): string {
    return tickCursor(quote.id);
  }

  @FieldResolver(() => Instrument)
  async instrument(@Root() quote: Quote, @Ctx() ctx: Context): Promise<Instrument> {
    const found = await ctx.loaders.instrument.load(quote.symbol);
    // A quote's symbol was known when it was stored; reference data may still lag behind the feed.
    return (
      found ?? { symbol: quote.symbol, name: quote.symbol, exchange: quote.exchange ?? "", sector: null }
    );
  }
}
