import { randomUUID } from "node:crypto";
import { unwrapResolverError } from "@apollo/server/errors";
import { GraphQLError, type GraphQLFormattedError } from "graphql";
import { ErrorCode, isClientErrorCode } from "../errors";
import { log } from "../log";

/**
 * What a client sees of an error. Client errors keep their message and code; anything else becomes a
 * message with an id, logged with its cause, so no stack trace, SQL or internals leak, whatever NODE_ENV.
 */
export function maskError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  const code = formatted.extensions?.code;
  if (isClientErrorCode(code)) {
    // `http` is the status the error stands for, read by the server and never sent (Apollo drops it too).
    const { stacktrace: _s, http: _h, ...extensions } = formatted.extensions ?? {};
    return { ...formatted, extensions };
  }
  const errorId = randomUUID();
  const cause = unwrapResolverError(error);
  log.error({ err: cause, errorId, path: formatted.path }, "unexpected error");
  return {
    message: `Internal server error (id ${errorId}).`,
    locations: formatted.locations,
    path: formatted.path,
    extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR, errorId },
  };
}

/** The same masking for a GraphQLError outside Apollo (the WebSocket path). */
export function maskGraphQLError(error: GraphQLError): GraphQLError {
  const f = maskError(error.toJSON(), error);
  return new GraphQLError(f.message, { path: f.path, extensions: f.extensions });
}
