import type { DataSource } from "typeorm";
import { GrantsRepo } from "../db/grants.repo";
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
  const pairs = DEMO_PRINCIPALS.flatMap((p) =>
    p.entitlements.map((entitlement) => ({ principal: p.id, entitlement })),
  );
  await new GrantsRepo(ds).grantMissing(pairs, "tickgraph-demo");
}
