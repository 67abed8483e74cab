import { Classification, Role, type Principal } from "./principal";

/** Classifications in ascending order of sensitivity: a level's index is its rank. */
export const LEVELS: readonly Classification[] = [
  Classification.PUBLIC,
  Classification.INTERNAL,
  Classification.CONFIDENTIAL,
  Classification.RESTRICTED,
];

export const rankOf = (level: Classification): number => LEVELS.indexOf(level);

/** The highest level each role may read. */
const ROLE_CEILING: Record<Role, Classification> = {
  [Role.USER]: Classification.INTERNAL,
  [Role.CUSTODIAN]: Classification.CONFIDENTIAL,
  [Role.STEWARD]: Classification.RESTRICTED,
  [Role.OWNER]: Classification.RESTRICTED,
};

/** The highest rank a principal may read: the most its roles allow, PUBLIC for a principal without roles. */
export function readableRank(principal: Principal): number {
  return Math.max(0, ...principal.roles.map((r) => rankOf(ROLE_CEILING[r])));
}

export const hasRole = (principal: Principal, ...roles: Role[]): boolean =>
  principal.roles.some((r) => roles.includes(r));
