import { Field, Float, Int, ObjectType, registerEnumType } from "type-graphql";
import { MoverBasis, RankBy, WindowSize } from "../windows/windows";
import { PageInfo } from "./page";

registerEnumType(WindowSize, {
  name: "WindowSize",
  description: "Hopping window length; every window hops by 10 s.",
});
registerEnumType(RankBy, { name: "RankBy", description: "The measure a ranking orders by, highest first." });
registerEnumType(MoverBasis, { name: "MoverBasis" });

export { MoverBasis, RankBy, WindowSize };

@ObjectType({
  description: "Aggregates of one symbol's trades in the half-open window [windowStart, windowEnd).",
})
export class WindowAggregate {
  @Field()
  symbol: string;

  @Field(() => WindowSize)
  size: WindowSize;

  @Field()
  windowStart: Date;

  @Field()
  windowEnd: Date;

  @Field({ description: "First trade's price by (event time, seq)." })
  open: number;

  @Field()
  high: number;

  @Field()
  low: number;

  @Field({ description: "Last trade's price by (event time, seq)." })
  close: number;

  @Field({ description: "Arithmetic mean of trade prices." })
  mean: number;

  @Field(() => Float, { nullable: true, description: "Σ(price·size)/Σsize; null when the volume is 0." })
  vwap: number | null;

  @Field()
  volume: number;

  @Field(() => Int)
  tickCount: number;

  @Field(() => Int, { description: "Times a late trade changed this window after it became visible." })
  revision: number;

  @Field({ description: "True once the allowed lateness (30 s) has passed: it will not change again." })
  final: boolean;

  @Field({
    description:
      "True when the window began before the first stored trade (ingest started inside it): its values " +
      "cover only [coveredFrom, windowEnd).",
  })
  partial: boolean;

  @Field({ description: "Start of the span the window's values cover: windowStart unless partial." })
  coveredFrom: Date;

  @Field()
  delayed: boolean;

  @Field(() => String, {
    description:
      "This row's position in the order windows are written (a revision is a new position). Pass it as " +
      "`after` to the windowAggregates subscription to resume right after this row.",
  })
  cursor?: string;
}

@ObjectType()
export class WindowAggregateEdge {
  @Field()
  cursor: string;

  @Field(() => WindowAggregate)
  node: WindowAggregate;
}

@ObjectType()
export class WindowAggregateConnection {
  @Field(() => [WindowAggregateEdge])
  edges: WindowAggregateEdge[];

  @Field(() => [WindowAggregate])
  nodes: WindowAggregate[];

  @Field(() => PageInfo)
  pageInfo: PageInfo;
}

@ObjectType()
export class RankedSymbol {
  @Field(() => Int)
  rank: number;

  @Field()
  symbol: string;

  @Field({ description: "The ranked measure's value." })
  value: number;

  @Field(() => WindowAggregate)
  aggregate: WindowAggregate;
}

@ObjectType({ description: "The top symbols of one window by a measure, ties by symbol ascending." })
export class WindowRanking {
  @Field(() => WindowSize)
  size: WindowSize;

  @Field(() => RankBy)
  by: RankBy;

  @Field()
  windowStart: Date;

  @Field()
  windowEnd: Date;

  @Field(() => [RankedSymbol])
  entries: RankedSymbol[];

  @Field()
  delayed: boolean;
}

@ObjectType()
export class Mover {
  @Field(() => Int)
  rank: number;

  @Field()
  symbol: string;

  @Field()
  price: number;

  @Field()
  referencePrice: number;

  @Field()
  change: number;

  @Field({ description: "100·(price − referencePrice)/referencePrice." })
  changePercent: number;

  @Field()
  volume: number;
}

@ObjectType({ description: "Biggest gainers and losers on a basis." })
export class MoverBoard {
  @Field(() => MoverBasis)
  basis: MoverBasis;

  @Field(() => WindowSize, {
    nullable: true,
    description: "The window size (WINDOW basis); null for SESSION.",
  })
  size: WindowSize | null;

  @Field({ description: "The window end (WINDOW) or the latest price's time (SESSION) the board is for." })
  asOf: Date;

  @Field(() => [Mover])
  gainers: Mover[];

  @Field(() => [Mover])
  losers: Mover[];

  @Field()
  delayed: boolean;

  @Field(() => String, {
    nullable: true,
    description:
      "Why the board is empty, when the data cannot fill it: e.g. a SESSION board before a previous " +
      "session was stored. Null otherwise.",
  })
  reason?: string | null;
}
