/** What a principal does on the platform (JWT claim `roles`). */
export enum Role {
  USER = "USER",
  CUSTODIAN = "CUSTODIAN",
  STEWARD = "STEWARD",
  OWNER = "OWNER",
}

/** Licensed market-data rights an owner grants. */
export enum Entitlement {
  REALTIME = "REALTIME",
  DEPTH = "DEPTH",
}

/** Sensitivity of a field, lowest first. */
export enum Classification {
  PUBLIC = "PUBLIC",
  INTERNAL = "INTERNAL",
  CONFIDENTIAL = "CONFIDENTIAL",
  RESTRICTED = "RESTRICTED",
}

/** An authenticated caller. */
export interface Principal {
  id: string;
  roles: Role[];
  /** Unix seconds when the token expires; subscriptions end then. */
  expiresAt?: number;
}

export function parseRoles(raw: unknown): Role[] {
  const list = Array.isArray(raw) ? raw : typeof raw === "string" ? raw.split(",") : [];
  const roles = new Set<Role>();
  for (const r of list) {
    const name = String(r).trim().toUpperCase();
    if (!(name in Role)) throw new Error(`unknown role "${r}": use ${Object.keys(Role).join(", ")}`);
    roles.add(name as Role);
  }
  return [...roles];
}
