import { Check, Column, Entity, Index, PrimaryGeneratedColumn } from "typeorm";
import { Classification } from "../core/access";

/**
 * A steward's classification of one field coordinate. Every change is a new row: the table is its own
 * history, and max(id) is the policy revision each operation compares with its cached copy.
 */
@Entity("field_policies")
@Index("field_policies_coordinate_idx", ["coordinate", "id"])
@Check(
  "field_policies_level_check",
  `level = ANY (ARRAY['PUBLIC'::text, 'INTERNAL'::text, 'CONFIDENTIAL'::text, 'RESTRICTED'::text])`,
)
export class FieldPolicyEntity {
  @PrimaryGeneratedColumn("increment", { type: "bigint", primaryKeyConstraintName: "field_policies_pkey" })
  id: string;

  @Column("text")
  coordinate: string;

  @Column("text")
  level: Classification;

  @Column("text", { name: "updated_by" })
  updatedBy: string;

  @Column("timestamptz", { name: "updated_at", default: () => "now()" })
  updatedAt: Date;
}
