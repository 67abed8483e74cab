import { Check, Column, Entity, Index, PrimaryGeneratedColumn, Unique } from "typeorm";

/**
 * One trade, with the best bid and ask known when it happened. `(symbol, seq)` is unique so that
 * ingest is idempotent: a trade seen twice is stored once.
 */
@Entity("quotes")
@Unique("quotes_symbol_seq_key", ["symbol", "seq"])
@Index("quotes_symbol_time_idx", ["symbol", "eventTime", "id"])
@Index("quotes_time_idx", ["eventTime", "id"])
@Check("quotes_price_check", `price > 0`)
@Check("quotes_size_check", `size >= 0`)
export class QuoteEntity {
  /** bigint arrives from pg as a string: kept as one, never rounded through a JS number. */
  @PrimaryGeneratedColumn("increment", { type: "bigint", primaryKeyConstraintName: "quotes_pkey" })
  id: string;

  @Column("text")
  symbol: string;

  @Column("timestamptz", { name: "event_time" })
  eventTime: Date;

  @Column("bigint")
  seq: string;

  @Column("double precision")
  price: number;

  @Column("integer")
  size: number;

  @Column("double precision", { nullable: true })
  bid: number | null;

  @Column("integer", { name: "bid_size", nullable: true })
  bidSize: number | null;

  @Column("double precision", { nullable: true })
  ask: number | null;

  @Column("integer", { name: "ask_size", nullable: true })
  askSize: number | null;

  @Column("text", { nullable: true })
  exchange: string | null;

  @Column("text", { default: "feed" })
  source: string;

  @Column("timestamptz", { name: "received_at", default: () => "now()" })
  receivedAt: Date;
}
