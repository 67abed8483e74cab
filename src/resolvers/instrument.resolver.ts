import { Arg, Ctx, FieldResolver, Query, Resolver, Root } from "type-graphql";
import { delayCutoff } from "../policy/session";
import type { Context } from "./context.type";
import { Instrument } from "./instrument.type";
import { Quote, toQuote } from "./quote.type";

@Resolver(() => Instrument)
export class InstrumentResolver {
  @Query(() => [Instrument], {
    description: "Instruments, by symbol; `search` matches symbol or name.",
  })
  instruments(
    @Ctx() ctx: Context,
    @Arg("search", () => String, { nullable: true }) search?: string | null,
    @Arg("sector", () => String, { nullable: true }) sector?: string | null,
  ): Promise<Instrument[]> {
    return ctx.market.instruments({ search: search ?? undefined, sector: sector ?? undefined });
  }

  @Query(() => Instrument, { nullable: true })
  async instrument(@Ctx() ctx: Context, @Arg("symbol") symbol: string): Promise<Instrument | null> {
    return ctx.loaders.instrument.load(symbol);
  }

  @FieldResolver(() => Quote, { nullable: true })
  async latestQuote(@Root() instrument: Instrument, @Ctx() ctx: Context): Promise<Quote | null> {
    const row = await ctx.loaders.latestQuote.load(instrument.symbol);
    return row && toQuote(row, delayCutoff(ctx) !== null);
  }
}
