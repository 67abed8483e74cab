import { Check, Column, Entity, Index, PrimaryGeneratedColumn } from "typeorm";
import { Entitlement } from "../core/access";

export type RequestStatus = "PENDING" | "APPROVED" | "DENIED";

/** A principal's request for an entitlement, decided by an owner (never the requester). */
@Entity("access_requests")
@Index("access_requests_pending_key", ["principal", "entitlement"], {
  unique: true,
  where: "status = 'PENDING'",
})
@Check("access_requests_entitlement_check", `entitlement = ANY (ARRAY['REALTIME'::text, 'DEPTH'::text])`)
@Check(
  "access_requests_status_check",
  `status = ANY (ARRAY['PENDING'::text, 'APPROVED'::text, 'DENIED'::text])`,
)
@Check("access_requests_check", `decided_by IS NULL OR decided_by <> principal`)
export class AccessRequestEntity {
  @PrimaryGeneratedColumn("increment", { type: "bigint", primaryKeyConstraintName: "access_requests_pkey" })
  id: string;

  @Column("text")
  principal: string;

  @Column("text")
  entitlement: Entitlement;

  @Column("text")
  reason: string;

  @Column("text", { default: "PENDING" })
  status: RequestStatus;

  @Column("timestamptz", { name: "requested_at", default: () => "now()" })
  requestedAt: Date;

  @Column("text", { name: "decided_by", nullable: true })
  decidedBy: string | null;

  @Column("timestamptz", { name: "decided_at", nullable: true })
  decidedAt: Date | null;

  @Column("text", { nullable: true })
  note: string | null;
}
