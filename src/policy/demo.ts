import type { DataSource } from "typeorm";
import { Entitlement, Role } from "./principal";

/** The principals a demo of the embedded platform starts with: one per role, and a delayed user. */
export const DEMO_PRINCIPALS: { id: string; roles: Role[]; entitlements: Entitlement[]; what: string }[] = [
  {
    id: "alice",
    roles: [Role.USER],
    entitlements: [Entitlement.REALTIME, Entitlement.DEPTH],
    what: "data user, real time and depth",
  },
  {
    id: "bob",
    roles: [Role.USER],
    entitlements: [],
    what: "data user without entitlements: delayed, no bid/ask",
  },
  {
    id: "carol",
    roles: [Role.CUSTODIAN],
    entitlements: [Entitlement.REALTIME],
    what: "custodian: ingest status, quarantine",
  },
  {
    id: "sam",
    roles: [Role.STEWARD],
    entitlements: [Entitlement.REALTIME],
    what: "steward: access log, classification",
  },
  { id: "olivia", roles: [Role.OWNER], entitlements: [], what: "owner: grants and access requests" },
];

/** Grants the demo principals their entitlements, unless they hold them already. */
export async function seedDemoPrincipals(ds: DataSource): Promise<void> {
  const rows = DEMO_PRINCIPALS.flatMap((p) => p.entitlements.map((e) => [p.id, e]));
  await ds.query(
    `INSERT INTO grants (principal, entitlement, granted_by)
     SELECT principal, entitlement, 'tickgraph-demo' FROM unnest($1::text[], $2::text[]) AS g(principal, entitlement)
     ON CONFLICT (principal, entitlement) WHERE revoked_at IS NULL DO NOTHING`,
    [rows.map((r) => r[0]), rows.map((r) => r[1])],
  );
}
