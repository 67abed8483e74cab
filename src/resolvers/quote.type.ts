import { Directive, Field, ID, Int, ObjectType } from "type-graphql";
import type { QuoteRow } from "../db/market.repo";
import { decodeCursor, encodeCursor, ID_PART, PageInfo, type CursorPart } from "./page";

const TICK_PART: CursorPart = { tag: "t" };

@ObjectType({ description: "A trade, with the best bid and ask known when it happened." })
export class Quote {
  @Field(() => ID)
  id: string;

  @Field()
  symbol: string;

  /** ISO 8601 text (as the database reads instants out, or as the feed stamped it). */
  @Field(() => Date, { description: "Event time, as the feed stamped it." })
  eventTime: string;

  @Field({ description: "The feed's trade id, rising by one per symbol." })
  seq: string;

  @Field()
  price: number;

  @Field(() => Int)
  size: number;

  @Field(() => Number, { nullable: true })
  @Directive("@entitled(to: DEPTH)")
  bid: number | null;

  @Field(() => Int, { nullable: true })
  @Directive("@entitled(to: DEPTH)")
  bidSize: number | null;

  @Field(() => Number, { nullable: true })
  @Directive("@entitled(to: DEPTH)")
  ask: number | null;

  @Field(() => Int, { nullable: true })
  @Directive("@entitled(to: DEPTH)")
  askSize: number | null;

  @Field(() => String, { nullable: true })
  exchange: string | null;

  @Field({ description: "True when served late because the caller lacks the REALTIME entitlement." })
  delayed: boolean;

  @Field(() => String, { nullable: true })
  @Directive("@classified(level: CONFIDENTIAL)")
  source: string | null;

  @Field(() => Date, { nullable: true })
  @Directive("@classified(level: CONFIDENTIAL)")
  receivedAt: string | null;

  @Field(() => String, {
    description:
      "This trade's position in the order trades are stored. Pass it as `after` to the quoteTicks " +
      "subscription to resume right after this trade.",
  })
  cursor?: string;
}

/** A quote's position in quoteTicks streams: its row id (ids rise in the order batches are stored). */
export const tickCursor = (id: string): string => encodeCursor(["t", id]);

/** The row id in a quoteTicks cursor; BAD_USER_INPUT when it is not one. */
export function tickAfter(cursor: string): string {
  return decodeCursor(cursor, [TICK_PART, ID_PART])[1];
}

/** The GraphQL view of a stored row; `delayed` says whether it was served late. */
export function toQuote(row: QuoteRow, delayed: boolean): QuoteRow & Quote {
  // Marks the row in place: a page is thousands of rows, and a copy each is garbage for nothing.
  const quote = row as QuoteRow & Quote;
  quote.delayed = delayed;
  return quote;
}

@ObjectType()
export class QuoteEdge {
  @Field()
  cursor: string;

  @Field(() => Quote)
  node: Quote;
}

@ObjectType()
export class QuoteConnection {
  @Field(() => [QuoteEdge])
  edges: QuoteEdge[];

  @Field(() => [Quote])
  nodes: Quote[];

  @Field(() => PageInfo)
  pageInfo: PageInfo;
}
