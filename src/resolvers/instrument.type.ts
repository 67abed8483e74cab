import { Field, ObjectType } from "type-graphql";
import type { InstrumentRow } from "../db/market.repo";

@ObjectType({ description: "A tradable symbol and its reference data." })
export class Instrument implements InstrumentRow {
  @Field()
  symbol: string;

  @Field()
  name: string;

  @Field()
  exchange: string;

  @Field(() => String, { nullable: true })
  sector: string | null;
}
