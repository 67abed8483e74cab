import { MapperKind, mapSchema } from "@graphql-tools/utils";
import { defaultFieldResolver, type GraphQLFieldResolver, type GraphQLSchema } from "graphql";
import { ErrorCode } from "../errors";
import type { FieldRegistry } from "../policy/field-registry";
import { Access, type PolicySession } from "../policy/session";

type Ctx = { policy?: PolicySession | null } | undefined;
type Resolver = GraphQLFieldResolver<unknown, Ctx>;

/** Stands in for the event after which a subscriber lost the right to its stream. */
const REVOKED = Symbol("revoked");

const isPromise = (v: unknown): v is Promise<unknown> =>
  typeof (v as { then?: unknown } | null)?.then === "function";

/** Rows a root field served: a list's length, a connection's nodes, else one object (none for null). */
function rowsOf(value: unknown): number {
  if (value == null) return 0;
  if (Array.isArray(value)) return value.length;
  const nodes = (value as { nodes?: unknown }).nodes;
  return Array.isArray(nodes) ? nodes.length : 1;
}

function touchArgs(s: PolicySession, args: Record<string, unknown>): void {
  if (typeof args.symbol === "string") s.touch(args.symbol);
  if (Array.isArray(args.symbols)) for (const sym of args.symbols) if (typeof sym === "string") s.touch(sym);
}

/** A field below the root: one cached decision per coordinate and operation (or subscription event). */
function guardField(id: number, resolve: Resolver, recordsSymbol: boolean): Resolver {
  return (source, args, ctx, info) => {
    const s = ctx?.policy;
    if (!s) return resolve(source, args, ctx, info);
    const access = s.decide(id);
    if (access !== Access.ALLOW) {
      if (access === Access.MASK) return null;
      throw s.forbidden(id);
    }
    const value = resolve(source, args, ctx, info);
    if (recordsSymbol && typeof value === "string") s.touch(value);
    return value;
  };
}

/**
 * A root field: the same check, plus what the access log needs (symbols asked for, rows served, and
 * whether a resolver itself refused with FORBIDDEN, e.g. an owner granting itself).
 */
function guardRoot(id: number, coordinate: string, resolve: Resolver, streaming: boolean): Resolver {
  return (source, args, ctx, info) => {
    const s = ctx?.policy;
    if (!s) return resolve(source, args, ctx, info);
    if (streaming && source === REVOKED) throw s.forbidden(id);
    const access = s.decide(id);
    if (access !== Access.ALLOW) {
      if (access === Access.MASK) return null;
      throw s.forbidden(id);
    }
    if (!streaming) touchArgs(s, args as Record<string, unknown>);
    const served = (value: unknown) => {
      s.rootServed++;
      s.rows += rowsOf(value);
      return value;
    };
    const failed = (err: unknown): never => {
      if ((err as { extensions?: { code?: unknown } })?.extensions?.code === ErrorCode.FORBIDDEN)
        s.denied.add(coordinate);
      throw err;
    };
    let value: unknown;
    try {
      value = resolve(source, args, ctx, info);
    } catch (err) {
      failed(err);
    }
    return isPromise(value) ? value.then(served, failed) : served(value);
  };
}

/**
 * A subscription's source stream, checked before each event: entitlements re-read when older than a
 * second and the field decided afresh. Once the field is denied, one last event carries the FORBIDDEN
 * error and the stream ends.
 */
function guardStream(
  stream: AsyncIterable<unknown>,
  s: PolicySession,
  id: number,
): AsyncIterableIterator<unknown> {
  const it = stream[Symbol.asyncIterator]();
  let revoked = false;
  const close = async () => {
    await it.return?.();
    return { done: true as const, value: undefined };
  };
  return {
    async next() {
      if (revoked) return close();
      const r = await it.next();
      if (r.done) return r;
      await s.beginEvent();
      if (s.decide(id) === Access.DENY) {
        revoked = true;
        return { done: false, value: REVOKED };
      }
      return r;
    },
    return: close,
    async throw(err: unknown) {
      await it.return?.();
      throw err;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

function guardSubscribe(id: number, subscribe: Resolver): Resolver {
  return async (source, args, ctx, info) => {
    const s = ctx?.policy;
    if (!s) return subscribe(source, args, ctx, info);
    if (s.decide(id) !== Access.ALLOW) throw s.forbidden(id);
    touchArgs(s, args as Record<string, unknown>);
    const stream = await subscribe(source, args, ctx, info);
    const iterable = stream as AsyncIterable<unknown> | null;
    return iterable && typeof iterable[Symbol.asyncIterator] === "function"
      ? guardStream(iterable, s, id)
      : stream;
  };
}

/**
 * The schema with every object field's `resolve` (and each subscription field's `subscribe`) wrapped
 * by the policy check. Enforcement happens at execution, so it holds whatever the path to a field:
 * aliases, fragments, nesting, either transport, every subscription event. Operations whose context
 * has no policy session run unchecked (the policy layer switched off).
 */
export function enforcePolicy(schema: GraphQLSchema, fields: FieldRegistry): GraphQLSchema {
  const roots = new Set(
    [schema.getQueryType(), schema.getMutationType()].filter((t) => t != null).map((t) => t.name),
  );
  const subscriptionType = schema.getSubscriptionType()?.name;
  return mapSchema(schema, {
    [MapperKind.OBJECT_FIELD]: (config, fieldName, typeName) => {
      const coordinate = `${typeName}.${fieldName}`;
      const info = fields.field(coordinate);
      if (!info) return config;
      const resolve = (config.resolve ?? defaultFieldResolver) as Resolver;
      if (typeName === subscriptionType) {
        return {
          ...config,
          subscribe: guardSubscribe(info.id, (config.subscribe ?? defaultFieldResolver) as Resolver),
          resolve: guardRoot(info.id, coordinate, resolve, true),
        };
      }
      if (roots.has(typeName)) return { ...config, resolve: guardRoot(info.id, coordinate, resolve, false) };
      return { ...config, resolve: guardField(info.id, resolve, fieldName === "symbol") };
    },
  });
}
