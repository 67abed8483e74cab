import { IsNull, type DataSource, type EntityManager } from "typeorm";
import { GrantEntity } from "../entities";
import type { Entitlement } from "../core/access";
import { announcePolicyChange } from "./policy-changes";
import { sqlOf, type Sql } from "./sql";

/** A grant as stored. */
export type GrantRow = Pick<
  GrantEntity,
  "id" | "principal" | "entitlement" | "grantedBy" | "grantedAt" | "expiresAt" | "revokedAt"
>;

/** Who held what over [since, until). */
export interface HolderRow {
  principal: string;
  entitlement: Entitlement;
  since: Date;
  until: Date | null;
}

/** What the policy reads for an operation: the caller's live entitlements and the policy revision. */
export interface PrincipalSnapshot {
  entitlements: Entitlement[];
  /** When the first of those grants expires (null: none expires). */
  nextExpiry: Date | null;
  /** max(field_policies.id): changes whenever any field is reclassified, on any replica. */
  revision: string;
}

export interface NewGrant {
  principal: string;
  entitlement: Entitlement;
  by: string;
  expiresAt: Date | null;
  requestId?: string;
}

/** An active grant: not revoked and not expired (checked against the database clock). */
const ACTIVE = `revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`;

/** Grants of entitlements; revocation sets revoked_at, nothing is deleted. */
export class GrantsRepo {
  private readonly sql: Sql;

  constructor(private readonly ds: DataSource) {
    this.sql = sqlOf(ds);
  }

  /** Hot path (every operation): one statement of index probes, straight to the pool. */
  async snapshot(principal: string): Promise<PrincipalSnapshot> {
    const [row] = await this.sql.query<PrincipalSnapshot>(
      `SELECT ARRAY(SELECT entitlement FROM grants WHERE principal = $1 AND ${ACTIVE} ORDER BY entitlement)
                AS entitlements,
              (SELECT min(expires_at) FROM grants WHERE principal = $1 AND ${ACTIVE}) AS "nextExpiry",
              (SELECT coalesce(max(id), 0) FROM field_policies)::text AS revision`,
      [principal],
    );
    return row;
  }

  /** Grants, superseding (revoking) the pair's current grant so that history stays continuous. */
  grant(g: NewGrant): Promise<GrantRow> {
    return this.ds.transaction((m) => insertGrant(m, g));
  }

  /** Revokes the pair's unrevoked grant; null when there is none. */
  revoke(principal: string, entitlement: Entitlement, by: string): Promise<GrantRow | null> {
    return this.ds.transaction(async (m) => {
      const current = await m.findOneBy(GrantEntity, { principal, entitlement, revokedAt: IsNull() });
      if (!current) return null;
      await m.update(GrantEntity, { id: current.id }, { revokedAt: () => "now()", revokedBy: by });
      await announcePolicyChange(m, `p:${principal}`);
      return m.findOneByOrFail(GrantEntity, { id: current.id });
    });
  }

  /** Every grant ever made (newest first), of one principal or of all. */
  list(principal?: string | null): Promise<GrantRow[]> {
    return this.ds.getRepository(GrantEntity).find({
      where: principal ? { principal } : {},
      order: { id: "DESC" },
    });
  }

  /** Who held what at instant `at`: granted at or before it, neither revoked nor expired by then. */
  holdersAt(at: Date): Promise<HolderRow[]> {
    return this.ds.query(
      `SELECT principal, entitlement, granted_at AS since,
              CASE WHEN revoked_at IS NULL THEN expires_at
                   WHEN expires_at IS NULL THEN revoked_at
                   ELSE least(revoked_at, expires_at) END AS until
       FROM grants
       WHERE granted_at <= $1 AND (revoked_at IS NULL OR revoked_at > $1)
         AND (expires_at IS NULL OR expires_at > $1)
       ORDER BY principal, entitlement`,
      [at],
    );
  }

  /** Grants each pair unless it is held already (demo principals, granted by `by`). */
  async grantMissing(pairs: { principal: string; entitlement: Entitlement }[], by: string): Promise<void> {
    await this.ds
      .createQueryBuilder()
      .insert()
      .into(GrantEntity)
      .values(pairs.map((p) => ({ ...p, grantedBy: by })))
      .orIgnore()
      .execute();
  }
}

/** Revokes the pair's current grant and inserts the new one, in `m`'s transaction. */
export async function insertGrant(m: EntityManager, g: NewGrant): Promise<GrantRow> {
  await m.update(
    GrantEntity,
    { principal: g.principal, entitlement: g.entitlement, revokedAt: IsNull() },
    { revokedAt: () => "now()", revokedBy: g.by },
  );
  const inserted = await m.insert(GrantEntity, {
    principal: g.principal,
    entitlement: g.entitlement,
    grantedBy: g.by,
    expiresAt: g.expiresAt,
    requestId: g.requestId ?? null,
  });
  await announcePolicyChange(m, `p:${g.principal}`);
  return m.findOneByOrFail(GrantEntity, { id: inserted.identifiers[0].id as string });
}
