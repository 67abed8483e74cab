/** The access vocabulary every room shares: roles, entitlements, classification levels. */

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
