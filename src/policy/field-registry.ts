import { getDirective } from "@graphql-tools/utils";
import {
  getNamedType,
  isIntrospectionType,
  isNonNullType,
  isObjectType,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
} from "graphql";
import type { FieldPolicyRow } from "../db/field-policies.repo";
import { LEVELS, rankOf } from "./levels";
import { Classification, Entitlement } from "./principal";

/** What the schema's directives say about one field. */
export interface FieldInfo {
  /** Index into the registry's arrays; stable for the schema's lifetime. */
  id: number;
  /** `Type.field` */
  coordinate: string;
  /** The field's own @classified level (PUBLIC when none). */
  own: Classification;
  /** The higher of its parent type's and its return type's @classified levels. */
  inherited: Classification;
  entitlement: Entitlement | null;
  nonNull: boolean;
}

/** One effective level, as `fieldPolicies` reports it. */
export interface EffectiveFieldPolicy {
  coordinate: string;
  level: Classification;
  updatedBy: string | null;
  updatedAt: Date | null;
}

function typeLevel(schema: GraphQLSchema, type: GraphQLNamedType): Classification {
  return (getDirective(schema, type, "classified")?.[0]?.level as Classification) ?? Classification.PUBLIC;
}

const higher = (a: Classification, b: Classification) => (rankOf(a) >= rankOf(b) ? a : b);

/**
 * Every object field of the schema with its classification: the highest of its own level (a steward's
 * run-time override replaces the @classified directive), its parent type's and its return type's.
 * Effective ranks live in one array indexed by field id, so the per-field check is an array read.
 */
export class FieldRegistry {
  readonly fields: FieldInfo[] = [];
  private readonly byCoordinate = new Map<string, FieldInfo>();
  private overrides = new Map<string, FieldPolicyRow>();
  /** The field_policies revision the overrides reflect. */
  revision = "0";
  private ranks: Uint8Array = new Uint8Array(0);

  constructor(schema: GraphQLSchema) {
    for (const type of Object.values(schema.getTypeMap())) {
      if (!isObjectType(type) || isIntrospectionType(type)) continue;
      const parent = typeLevel(schema, type);
      for (const field of Object.values(type.getFields()) as GraphQLField<unknown, unknown>[]) {
        const info: FieldInfo = {
          id: this.fields.length,
          coordinate: `${type.name}.${field.name}`,
          own:
            (getDirective(schema, field, "classified")?.[0]?.level as Classification) ??
            Classification.PUBLIC,
          inherited: higher(parent, typeLevel(schema, getNamedType(field.type))),
          entitlement: (getDirective(schema, field, "entitled")?.[0]?.to as Entitlement) ?? null,
          nonNull: isNonNullType(field.type),
        };
        this.fields.push(info);
        this.byCoordinate.set(info.coordinate, info);
      }
    }
    this.recompute();
  }

  field(coordinate: string): FieldInfo | undefined {
    return this.byCoordinate.get(coordinate);
  }

  rank(id: number): number {
    return this.ranks[id];
  }

  level(id: number): Classification {
    return LEVELS[this.ranks[id]];
  }

  /** Replaces the run-time overrides (rows for unknown coordinates, e.g. of a removed field, are ignored). */
  setOverrides(rows: FieldPolicyRow[], revision: string): void {
    this.overrides = new Map(
      rows.filter((r) => this.byCoordinate.has(r.coordinate)).map((r) => [r.coordinate, r]),
    );
    this.revision = revision;
    this.recompute();
  }

  /** The effective level of every field coordinate, sorted by coordinate. */
  policies(): EffectiveFieldPolicy[] {
    return this.fields
      .map((f) => {
        const o = this.overrides.get(f.coordinate);
        return {
          coordinate: f.coordinate,
          level: this.level(f.id),
          updatedBy: o?.updatedBy ?? null,
          updatedAt: o?.updatedAt ?? null,
        };
      })
      .sort((a, b) => (a.coordinate < b.coordinate ? -1 : 1));
  }

  private recompute(): void {
    const ranks = new Uint8Array(this.fields.length);
    for (const f of this.fields) {
      const own = this.overrides.get(f.coordinate)?.level ?? f.own;
      ranks[f.id] = rankOf(higher(own, f.inherited));
    }
    this.ranks = ranks;
  }
}
