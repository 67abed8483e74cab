import { Role } from "../core/access";

// The vocabulary of access lives in core, below every room; policy and the API read it from here too.
export { Classification, Entitlement, Role } from "../core/access";

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
