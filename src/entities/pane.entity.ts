import { Column, Entity, Index, PrimaryColumn } from "typeorm";

/**
 * A 10-second partial aggregate of one symbol, merged on conflict as trades arrive. open/close keep the
 * (event time, seq) of the trade they came from, so merges keep "first/last by (time, seq)" exact.
 */
@Entity("panes_10s")
@Index("panes_10s_bucket_idx", ["bucket"])
export class PaneEntity {
  @PrimaryColumn("text", { primaryKeyConstraintName: "panes_10s_pkey" })
  symbol: string;

  @PrimaryColumn("timestamptz", { primaryKeyConstraintName: "panes_10s_pkey" })
  bucket: Date;

  @Column("integer")
  n: number;

  @Column("double precision", { name: "px_sum" })
  pxSum: number;

  @Column("double precision", { name: "pv_sum" })
  pvSum: number;

  @Column("double precision")
  volume: number;

  @Column("double precision")
  high: number;

  @Column("double precision")
  low: number;

  @Column("double precision", { name: "open_px" })
  openPx: number;

  @Column("timestamptz", { name: "open_ts" })
  openTs: Date;

  @Column("bigint", { name: "open_seq" })
  openSeq: string;

  @Column("double precision", { name: "close_px" })
  closePx: number;

  @Column("timestamptz", { name: "close_ts" })
  closeTs: Date;

  @Column("bigint", { name: "close_seq" })
  closeSeq: string;
}
