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

/** REQUEST: an HTTP request or WebSocket connection refused before any operation could be read. */
export type OperationKind = "QUERY" | "MUTATION" | "SUBSCRIPTION" | "REQUEST";
export type AccessDecision = "ALLOWED" | "PARTIAL" | "DENIED";
/** A subscription logs an entry when it starts and one when it ends; other operations one, phase null. */
export type AccessPhase = "START" | "END";
