import { GraphQLScalarType } from "graphql";
import { GraphQLDateTime } from "graphql-scalars";

/** What `Date#toISOString` writes for years 0 to 9999, and the database's `isoText` too. */
const CANONICAL = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

const dateTime = GraphQLDateTime.toConfig();

/**
 * The contract's `DateTime`: instants as ISO-8601 strings in UTC. Text already in the form a Date is
 * written in (as the database reads instants out, see `isoText`) goes out as it is; anything else as
 * graphql-scalars' DateTime serializes it (a Date, other ISO-8601 text, epoch ms).
 */
export const DateTimeScalar = new GraphQLScalarType({
  ...dateTime,
  name: "DateTime",
  description: "An instant, as an ISO-8601 string in UTC.",
  serialize: (value) =>
    typeof value === "string" && CANONICAL.test(value) ? value : dateTime.serialize(value),
});
