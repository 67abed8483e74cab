import { GraphQLError, type ValidationRule } from "graphql";
import { ErrorCode } from "../errors";

/**
 * Refuses `__schema` and `__type` (INTROSPECTION=off), on HTTP and WebSocket alike. `__typename` stays:
 * clients add it to every selection. Introspection is never open to anonymous callers whatever this
 * says, since no operation runs without a valid token.
 */
export const noIntrospection: ValidationRule = (context) => ({
  Field(node) {
    if (node.name.value === "__schema" || node.name.value === "__type") {
      context.reportError(
        new GraphQLError(
          `Introspection (${node.name.value}) is turned off on this server (INTROSPECTION=off): ask its custodians for the schema.`,
          { nodes: [node], extensions: { code: ErrorCode.GRAPHQL_VALIDATION_FAILED } },
        ),
      );
    }
  },
});
