import { Check, Column, Entity, PrimaryColumn } from "typeorm";

/**
 * How far the window engine has come (one row). A window is final when its end is at or before
 * final_until: derived on read, so that finalizing never rewrites rows.
 */
@Entity("window_progress")
@Check("window_progress_id_check", `id = 1`)
export class WindowProgressEntity {
  @PrimaryColumn("smallint", { default: 1, primaryKeyConstraintName: "window_progress_pkey" })
  id: number;

  @Column("timestamptz", { name: "emitted_until", nullable: true })
  emittedUntil: Date | null;

  @Column("timestamptz", { name: "final_until", nullable: true })
  finalUntil: Date | null;
}
