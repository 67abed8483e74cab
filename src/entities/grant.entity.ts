import { Check, Column, Entity, Index, PrimaryGeneratedColumn } from "typeorm";
import { Entitlement } from "../core/access";

/** An entitlement granted by an owner; revocation sets revoked_at, nothing is deleted. */
@Entity("grants")
@Index("grants_current_key", ["principal", "entitlement"], { unique: true, where: "revoked_at IS NULL" })
@Index("grants_principal_idx", ["principal", "grantedAt"])
@Check("grants_entitlement_check", `entitlement = ANY (ARRAY['REALTIME'::text, 'DEPTH'::text])`)
@Check("grants_check", `granted_by <> principal`)
export class GrantEntity {
  @PrimaryGeneratedColumn("increment", { type: "bigint", primaryKeyConstraintName: "grants_pkey" })
  id: string;

  @Column("text")
  principal: string;

  @Column("text")
  entitlement: Entitlement;

  @Column("text", { name: "granted_by" })
  grantedBy: string;

  @Column("timestamptz", { name: "granted_at", default: () => "now()" })
  grantedAt: Date;

  @Column("timestamptz", { name: "expires_at", nullable: true })
  expiresAt: Date | null;

  @Column("timestamptz", { name: "revoked_at", nullable: true })
  revokedAt: Date | null;

  @Column("text", { name: "revoked_by", nullable: true })
  revokedBy: string | null;

  @Column("bigint", { name: "request_id", nullable: true })
  requestId: string | null;
}
