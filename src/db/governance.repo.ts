import type { DataSource } from "typeorm";
import type { Classification, Entitlement } from "../policy/principal";
import { sqlOf, type Sql } from "./sql";

export interface GrantRow {
  id: string;
  principal: string;
  entitlement: Entitlement;
  grantedBy: string;
  grantedAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
}

export type RequestStatus = "PENDING" | "APPROVED" | "DENIED";

export interface AccessRequestRow {
  id: string;
  principal: string;
  entitlement: Entitlement;
  reason: string;
  status: RequestStatus;
  requestedAt: Date;
  decidedBy: string | null;
  decidedAt: Date | null;
  note: string | null;
}

export interface FieldPolicyRow {
  coordinate: string;
  level: Classification;
  updatedBy: string;
  updatedAt: Date;
}

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

/**
 * Every change to grants or field policies is announced on this channel, in its transaction, so
 * each replica drops what it cached: `p:<principal>` for a principal's grants, `fields` for policies.
 */
export const POLICY_CHANNEL = "tickgraph_policy";

const notify = (q: Queryable, payload: string) =>
  q.query(`SELECT pg_notify('${POLICY_CHANNEL}', $1)`, [payload]);

// Row ids are selected as text (bigint exceeds a JS number); every ORDER BY names the table's column,
// never the text output column of the same name, which would sort "9" above "10".

/** DataSource or a transaction's EntityManager. */
interface Queryable {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  query(sql: string, params?: unknown[]): Promise<any>;
}

const GRANT_COLUMNS = `id::text, principal, entitlement, granted_by AS "grantedBy", granted_at AS "grantedAt",
  expires_at AS "expiresAt", revoked_at AS "revokedAt"`;
const REQUEST_COLUMNS = `id::text, principal, entitlement, reason, status, requested_at AS "requestedAt",
  decided_by AS "decidedBy", decided_at AS "decidedAt", note`;

/** An active grant: not revoked and not expired (checked against the database clock). */
const ACTIVE = `revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`;

/** SQL of grants, access requests and run-time field classification. */
export class GovernanceRepo {
  private readonly sql: Sql;

  constructor(private readonly ds: DataSource) {
    this.sql = sqlOf(ds);
  }

  /** One statement of index probes: cheap enough to run for every operation. */
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

  /** The current level of every reclassified coordinate, and the revision it reflects. */
  async fieldPolicies(): Promise<{ rows: FieldPolicyRow[]; revision: string }> {
    const rows: (FieldPolicyRow & { id: string })[] = await this.ds.query(
      `SELECT DISTINCT ON (coordinate) p.id::text AS id, coordinate, level, updated_by AS "updatedBy",
              updated_at AS "updatedAt"
       FROM field_policies p ORDER BY coordinate, p.id DESC`,
    );
    const revision = rows.reduce((max, r) => (BigInt(r.id) > BigInt(max) ? r.id : max), "0");
    return { rows, revision };
  }

  classify(coordinate: string, level: Classification, by: string): Promise<FieldPolicyRow> {
    return this.ds.transaction(async (m) => {
      const [row] = await m.query(
        `INSERT INTO field_policies (coordinate, level, updated_by) VALUES ($1, $2, $3)
         RETURNING coordinate, level, updated_by AS "updatedBy", updated_at AS "updatedAt"`,
        [coordinate, level, by],
      );
      await notify(m, "fields");
      return row;
    });
  }

  /** Grants, superseding (revoking) the pair's current grant so that history stays continuous. */
  grant(g: {
    principal: string;
    entitlement: Entitlement;
    by: string;
    expiresAt: Date | null;
    requestId?: string;
  }): Promise<GrantRow> {
    return this.ds.transaction((m) => insertGrant(m, g));
  }

  /** Revokes the pair's unrevoked grant; null when there is none. */
  revoke(principal: string, entitlement: Entitlement, by: string): Promise<GrantRow | null> {
    return this.ds.transaction(async (m) => {
      const [rows] = await m.query(
        `UPDATE grants SET revoked_at = now(), revoked_by = $3
         WHERE principal = $1 AND entitlement = $2 AND revoked_at IS NULL RETURNING ${GRANT_COLUMNS}`,
        [principal, entitlement, by],
      );
      if (rows.length) await notify(m, `p:${principal}`);
      return rows[0] ?? null;
    });
  }

  /** Every grant ever made (newest first), of one principal or of all. */
  grants(principal?: string | null): Promise<GrantRow[]> {
    return principal
      ? this.ds.query(`SELECT ${GRANT_COLUMNS} FROM grants WHERE principal = $1 ORDER BY grants.id DESC`, [
          principal,
        ])
      : this.ds.query(`SELECT ${GRANT_COLUMNS} FROM grants ORDER BY grants.id DESC`);
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

  /** A new pending request; null when the principal already has one pending for the entitlement. */
  async requestAccess(
    principal: string,
    entitlement: Entitlement,
    reason: string,
  ): Promise<AccessRequestRow | null> {
    const rows = await this.ds.query(
      `INSERT INTO access_requests (principal, entitlement, reason) VALUES ($1, $2, $3)
       ON CONFLICT (principal, entitlement) WHERE status = 'PENDING' DO NOTHING
       RETURNING ${REQUEST_COLUMNS}`,
      [principal, entitlement, reason],
    );
    return rows[0] ?? null;
  }

  async request(id: string): Promise<AccessRequestRow | null> {
    const rows = await this.ds.query(`SELECT ${REQUEST_COLUMNS} FROM access_requests WHERE id = $1`, [id]);
    return rows[0] ?? null;
  }

  requests(filter: { principal?: string; status?: RequestStatus | null }): Promise<AccessRequestRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.principal) where.push(`principal = $${params.push(filter.principal)}`);
    if (filter.status) where.push(`status = $${params.push(filter.status)}`);
    return this.ds.query(
      `SELECT ${REQUEST_COLUMNS} FROM access_requests
       ${where.length ? "WHERE " + where.join(" AND ") : ""} ORDER BY access_requests.id DESC`,
      params,
    );
  }

  /**
   * Decides a pending request, granting on approval in the same transaction. Null when the request
   * was no longer pending (decided concurrently).
   */
  decide(d: {
    id: string;
    approve: boolean;
    by: string;
    note: string | null;
    expiresAt: Date | null;
  }): Promise<AccessRequestRow | null> {
    return this.ds.transaction(async (m) => {
      const [rows] = await m.query(
        `UPDATE access_requests SET status = $2, decided_by = $3, decided_at = now(), note = $4
         WHERE id = $1 AND status = 'PENDING' RETURNING ${REQUEST_COLUMNS}`,
        [d.id, d.approve ? "APPROVED" : "DENIED", d.by, d.note],
      );
      const req: AccessRequestRow | undefined = rows[0];
      if (req && d.approve) {
        await insertGrant(m, {
          principal: req.principal,
          entitlement: req.entitlement,
          by: d.by,
          expiresAt: d.expiresAt,
          requestId: req.id,
        });
      }
      return req ?? null;
    });
  }
}

async function insertGrant(
  q: Queryable,
  g: { principal: string; entitlement: Entitlement; by: string; expiresAt: Date | null; requestId?: string },
): Promise<GrantRow> {
  await q.query(
    `UPDATE grants SET revoked_at = now(), revoked_by = $3
     WHERE principal = $1 AND entitlement = $2 AND revoked_at IS NULL`,
    [g.principal, g.entitlement, g.by],
  );
  const [row] = await q.query(
    `INSERT INTO grants (principal, entitlement, granted_by, expires_at, request_id)
     VALUES ($1, $2, $3, $4, $5) RETURNING ${GRANT_COLUMNS}`,
    [g.principal, g.entitlement, g.by, g.expiresAt, g.requestId ?? null],
  );
  await notify(q, `p:${g.principal}`);
  return row;
}
