import { Column, Entity, PrimaryColumn } from "typeorm";

@Entity("instruments")
export class InstrumentEntity {
  @PrimaryColumn("text", { primaryKeyConstraintName: "instruments_pkey" })
  symbol: string;

  @Column("text")
  name: string;

  @Column("text")
  exchange: string;

  @Column("text", { nullable: true })
  sector: string | null;
}
