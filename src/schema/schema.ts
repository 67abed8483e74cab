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
import { createEventBus, type EventBus } from "../events/bus";
import { GovernanceResolver } from "../resolvers/governance.resolver";
import { IngestResolver, withIngestServices, type IngestServices } from "../resolvers/ingest.resolver";
import { InstrumentResolver } from "../resolvers/instrument.resolver";
import { MeResolver } from "../resolvers/me.resolver";
import { QuoteResolver } from "../resolvers/quote.resolver";
import { DateTimeScalar } from "../resolvers/scalars";
import { WindowResolver } from "../resolvers/window.resolver";
// After the other resolvers: type-graphql lists fields in the order their classes load.
import { LiveResolver, withLiveBus } from "../resolvers/live.resolver";
import { Classification, Entitlement } from "../resolvers/enums";

export const resolvers = [
  MeResolver,
  InstrumentResolver,
  QuoteResolver,
  GovernanceResolver,
  WindowResolver,
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
 * The one schema of the platform, built from the resolvers' classes. `bus` feeds the
 * `@Subscription({ topics })` fields: pass the one domain code publishes to. `ingest` backs the ingest
 * and quarantine fields (without it ingestStatus is null and the quarantine fields fail).
 */
export function buildTickgraphSchema(opts: { bus?: EventBus; ingest?: IngestServices } = {}): GraphQLSchema {
  const bus = opts.bus ?? createEventBus();
  const schema = buildSchemaSync({
    resolvers,
    scalarsMap: [{ type: Date, scalar: DateTimeScalar }],
    validate: false,
    // Topics are plain strings at run time; the bus's typed signature is narrower than type-graphql's.
    pubSub: bus as unknown as PubSub,
  });
  const governed = withLiveBus(withGovernanceDirectives(schema), bus);
  return opts.ingest ? withIngestServices(governed, opts.ingest) : governed;
}

/** SDL with applied directives: what `schema.graphql` holds. */
export function printTickgraphSchema(schema: GraphQLSchema): string {
  return printSchemaWithDirectives(schema) + "\n";
}
