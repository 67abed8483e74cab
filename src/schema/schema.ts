import { printSchemaWithDirectives } from "@graphql-tools/utils";
import {
  GraphQLDirective,
  GraphQLEnumType,
  GraphQLNonNull,
  GraphQLSchema,
  DirectiveLocation,
  specifiedDirectives,
  type GraphQLNamedType,
} from "graphql";
import { buildSchemaSync, type PubSub } from "type-graphql";
import { GovernanceResolver } from "../resolvers/governance.resolver";
import { IngestResolver } from "../resolvers/ingest.resolver";
import { InstrumentResolver } from "../resolvers/instrument.resolver";
import { MeResolver } from "../resolvers/me.resolver";
import { QuoteResolver } from "../resolvers/quote.resolver";
import { DateTimeScalar } from "../resolvers/scalars";
import { WindowAggregateResolver, WindowResolver } from "../resolvers/window.resolver";
// After the other resolvers: type-graphql lists fields in the order their classes load.
import { LiveResolver } from "../resolvers/live.resolver";
import { Classification, Entitlement } from "../resolvers/enums";

export const resolvers = [
  MeResolver,
  InstrumentResolver,
  QuoteResolver,
  GovernanceResolver,
  WindowResolver,
  WindowAggregateResolver,
  IngestResolver,
  LiveResolver,
] as const;

/** The schema's enum of that name, or (when no field uses it yet) one made from the TypeScript enum. */
function enumNamed(schema: GraphQLSchema, name: string, values: Record<string, string>): GraphQLEnumType {
  const t: GraphQLNamedType | undefined | null = schema.getType(name);
  if (t instanceof GraphQLEnumType) return t;
  return new GraphQLEnumType({
    name,
    values: Object.fromEntries(Object.keys(values).map((v) => [v, { value: v }])),
  });
}

/**
 * The governance directives, defined over the very enum types type-graphql registered, so that a
 * directive argument and a field of the same enum share one type.
 */
function withGovernanceDirectives(schema: GraphQLSchema): GraphQLSchema {
  const classified = new GraphQLDirective({
    name: "classified",
    description: "The sensitivity of a type or field; a caller's roles decide which levels it may read.",
    locations: [DirectiveLocation.OBJECT, DirectiveLocation.FIELD_DEFINITION],
    args: { level: { type: new GraphQLNonNull(enumNamed(schema, "Classification", Classification)) } },
  });
  const entitled = new GraphQLDirective({
    name: "entitled",
    description: "Served only to callers holding the entitlement; masked (null) for others.",
    locations: [DirectiveLocation.FIELD_DEFINITION],
    args: { to: { type: new GraphQLNonNull(enumNamed(schema, "Entitlement", Entitlement)) } },
  });
  return new GraphQLSchema({
    ...schema.toConfig(),
    directives: [...specifiedDirectives, classified, entitled],
  });
}

/**
 * type-graphql wants a pubSub as soon as any subscription exists; every subscription here subscribes to
 * the bus through its request context instead, so this one only says so if it is ever reached.
 */
const CONTEXT_BUS_ONLY: PubSub = {
  publish() {
    throw new Error("publish on the context's bus");
  },
  subscribe() {
    throw new Error("a subscription subscribes to the context's bus (ctx.bus), never by topics");
  },
};

/** The one schema of the platform, built from the resolvers' classes (they reach everything through the context). */
export function buildTickgraphSchema(): GraphQLSchema {
  const schema = buildSchemaSync({
    resolvers,
    scalarsMap: [{ type: Date, scalar: DateTimeScalar }],
    validate: false,
    pubSub: CONTEXT_BUS_ONLY,
  });
  return withGovernanceDirectives(schema);
}

/** SDL with applied directives: what `schema.graphql` holds. */
export function printTickgraphSchema(schema: GraphQLSchema): string {
  return printSchemaWithDirectives(schema) + "\n";
}
