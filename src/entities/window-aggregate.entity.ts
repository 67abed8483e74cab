import { Column, Entity, Index, PrimaryColumn } from "typeorm";
import { WindowSize } from "../core/market";

/** One symbol's aggregate over one hopping window; rewritten (revision + 1) when a late trade changes it. */
@Entity("window_aggregates")
@Index("window_aggregates_symbol_idx", ["size", "symbol", "windowEnd"])
@Index("window_aggregates_changes_idx", ["size", "updatedAt", "windowEnd", "symbol"])
export class WindowAggregateEntity {
  @PrimaryColumn({
    type: "enum",
    enum: WindowSize,
    enumName: "window_size",
    primaryKeyConstraintName: "window_aggregates_pkey",
  })
  size: WindowSize;

  @PrimaryColumn("timestamptz", { name: "window_end", primaryKeyConstraintName: "window_aggregates_pkey" })
  windowEnd: Date;

  @PrimaryColumn("text", { primaryKeyConstraintName: "window_aggregates_pkey" })
  symbol: string;

  @Column("timestamptz", { name: "window_start" })
  windowStart: Date;

  @Column("double precision")
  open: number;

  @Column("double precision")
  high: number;

  @Column("double precision")
  low: number;

  @Column("double precision")
  close: number;

  @Column("double precision")
  mean: number;

  @Column("double precision", { nullable: true })
  vwap: number | null;

  @Column("double precision")
  volume: number;

  @Column("integer", { name: "tick_count" })
  tickCount: number;

  @Column("integer", { default: 0 })
  revision: number;

  @Column("timestamptz", { name: "updated_at", default: () => "now()" })
  updatedAt: Date;
}
