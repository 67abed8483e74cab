import { GraphQLError } from "graphql";

/** Every `extensions.code` a client can receive. Anything else is masked to INTERNAL_SERVER_ERROR. */
export enum ErrorCode {
  BAD_USER_INPUT = "BAD_USER_INPUT",
  UNAUTHENTICATED = "UNAUTHENTICATED",
  FORBIDDEN = "FORBIDDEN",
  RATE_LIMITED = "RATE_LIMITED",
  QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX",
  GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED",
  GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED",
  OPERATION_RESOLUTION_FAILURE = "OPERATION_RESOLUTION_FAILURE",
  BAD_REQUEST = "BAD_REQUEST",
  PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND",
  PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED",
  AUDIT_UNAVAILABLE = "AUDIT_UNAVAILABLE",
  /** The result would exceed MAX_RESPONSE_BYTES. */
  RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE",
  INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR",
}

const CLIENT_CODES = new Set<string>(
  Object.values(ErrorCode).filter((c) => c !== ErrorCode.INTERNAL_SERVER_ERROR),
);

/** True for codes whose message is written for clients and safe to show them. */
export function isClientErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && CLIENT_CODES.has(code);
}

/**
 * An error meant for the client: its message and code reach it as they are. `extensions.http.status` is
 * the HTTP status it stands for (400 unless given); the server settles the response's status from it as
 * the GraphQL-over-HTTP spec asks, and it never reaches the client.
 */
export class ClientError extends GraphQLError {
  constructor(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}, status = 400) {
    super(message, { extensions: { http: { status }, ...extensions, code } });
  }
}

export class BadUserInputError extends ClientError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super(ErrorCode.BAD_USER_INPUT, message, extensions);
  }
}

export class UnauthenticatedError extends ClientError {
  constructor(message = "A valid bearer token is required: Authorization: Bearer <token>.") {
    super(ErrorCode.UNAUTHENTICATED, message, {}, 401);
  }
}

export class ForbiddenError extends ClientError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super(ErrorCode.FORBIDDEN, message, extensions, 403);
  }
}

export class QueryTooComplexError extends ClientError {
  constructor(message: string) {
    super(ErrorCode.QUERY_TOO_COMPLEX, message);
  }
}

export class RateLimitedError extends ClientError {
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super(ErrorCode.RATE_LIMITED, message, extensions, 429);
  }
}

/** The client's answer when its operation could not be logged: the response is withheld. */
export class AuditUnavailableError extends ClientError {
  constructor() {
    super(
      ErrorCode.AUDIT_UNAVAILABLE,
      "The access log could not be written, so the response is withheld. Try again shortly.",
      {},
      503,
    );
  }
}
