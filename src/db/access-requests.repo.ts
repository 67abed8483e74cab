import type { DataSource } from "typeorm";
import { AccessRequestEntity, type RequestStatus } from "../entities/access-request.entity";
import type { Entitlement } from "../core/access";
import { insertGrant } from "./grants.repo";

export type { RequestStatus };

/** An access request as stored. */
export type AccessRequestRow = Omit<AccessRequestEntity, never>;

/** Principals' requests for entitlements, decided by owners. */
export class AccessRequestsRepo {
  constructor(private readonly ds: DataSource) {}

  /** A new pending request; null when the principal already has one pending for the entitlement. */
  async create(
    principal: string,
    entitlement: Entitlement,
    reason: string,
  ): Promise<AccessRequestRow | null> {
    const result = await this.ds
      .createQueryBuilder()
      .insert()
      .into(AccessRequestEntity)
      .values({ principal, entitlement, reason })
      .orIgnore() // the partial unique index: one pending request per (principal, entitlement)
      .returning("id")
      .execute();
    const id = (result.raw as { id: string }[])[0]?.id;
    return id ? this.ds.getRepository(AccessRequestEntity).findOneBy({ id }) : null;
  }

  get(id: string): Promise<AccessRequestRow | null> {
    return this.ds.getRepository(AccessRequestEntity).findOneBy({ id });
  }

  /** Newest first; of one principal and one status, or all. */
  list(filter: { principal?: string; status?: RequestStatus | null }): Promise<AccessRequestRow[]> {
    return this.ds.getRepository(AccessRequestEntity).find({
      where: {
        ...(filter.principal ? { principal: filter.principal } : {}),
        ...(filter.status ? { status: filter.status } : {}),
      },
      order: { id: "DESC" },
    });
  }

  /**
   * Decides a pending request, granting on approval in the same transaction. Null when the request was
   * no longer pending (decided concurrently).
   */
  decide(d: {
    id: string;
    approve: boolean;
    by: string;
    note: string | null;
    expiresAt: Date | null;
  }): Promise<AccessRequestRow | null> {
    return this.ds.transaction(async (m) => {
      const { affected } = await m.update(
        AccessRequestEntity,
        { id: d.id, status: "PENDING" },
        {
          status: d.approve ? "APPROVED" : "DENIED",
          decidedBy: d.by,
          decidedAt: () => "now()",
          note: d.note,
        },
      );
      if (!affected) return null;
      const req = await m.findOneByOrFail(AccessRequestEntity, { id: d.id });
      if (d.approve) {
        await insertGrant(m, {
          principal: req.principal,
          entitlement: req.entitlement,
          by: d.by,
          expiresAt: d.expiresAt,
          requestId: req.id,
        });
      }
      return req;
    });
  }
}
