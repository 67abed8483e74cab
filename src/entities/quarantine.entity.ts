import { Column, Entity, Index, PrimaryGeneratedColumn } from "typeorm";

/** A feed input the validator rejected, kept verbatim (text: nothing about it is trusted). */
@Entity("quarantine")
@Index("quarantine_reason_idx", ["reason", "id"])
@Index("quarantine_received_idx", ["receivedAt"])
export class QuarantineEntity {
  @PrimaryGeneratedColumn("increment", { type: "bigint", primaryKeyConstraintName: "quarantine_pkey" })
  id: string;

  @Column("timestamptz", { name: "received_at", default: () => "now()" })
  receivedAt: Date;

  @Column("text")
  raw: string;

  @Column("text")
  reason: string;

  @Column("text", { nullable: true })
  detail: string | null;

  /** The market's time when it arrived: delayed views of it are measured on it. */
  @Column("timestamptz", { name: "market_at", nullable: true })
  marketAt: Date | null;
}
