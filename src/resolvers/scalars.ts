import { GraphQLScalarType } from "graphql";
import { GraphQLDateTime } from "graphql-scalars";

/** The contract's `DateTime`: instants as ISO-8601 strings in UTC. */
export const DateTimeScalar = new GraphQLScalarType({
  ...GraphQLDateTime.toConfig(),
  name: "DateTime",
  description: "An instant, as an ISO-8601 string in UTC.",
});
