import { Kind, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode } from "graphql";
import { ArgsType, Field, Int, ObjectType } from "type-graphql";
import { BadUserInputError } from "../errors";
import { SortOrder } from "./enums";

@ObjectType()
export class PageInfo {
  @Field()
  hasNextPage: boolean;

  @Field(() => String, { nullable: true })
  endCursor: string | null;
}

/** Opaque cursors: base64url of the row's key parts joined by ":". */
export function encodeCursor(parts: string[]): string {
  return Buffer.from(parts.join(":")).toString("base64url");
}

/** One part of a cursor's key: a whole number within a range, or a symbol. */
export type CursorPart = { int: readonly [bigint, bigint] } | "symbol" | { tag: string };

/** Row ids of bigserial columns. */
export const ID_PART: CursorPart = { int: [1n, 2n ** 63n - 1n] };
/** Instants from year 1 to 9999 (what Postgres timestamps and JS dates both hold), in ms and in µs. */
export const EPOCH_MS_PART: CursorPart = { int: [-62135596800000n, 253402300799999n] };
export const EPOCH_US_PART: CursorPart = { int: [-62135596800000000n, 253402300799999999n] };
export const SYMBOL_PART: CursorPart = "symbol";
/** Access-log seqs, which are read as JS numbers. */
export const SEQ_PART: CursorPart = { int: [1n, BigInt(Number.MAX_SAFE_INTEGER)] };

const INT = /^-?\d{1,20}$/;
const SYMBOL = /^[A-Za-z0-9._-]{1,32}$/;

function validPart(value: string, part: CursorPart): boolean {
  if (part === "symbol") return SYMBOL.test(value);
  if ("tag" in part) return value === part.tag;
  if (!INT.test(value)) return false;
  const n = BigInt(value);
  return n >= part.int[0] && n <= part.int[1];
}

/** The key parts of a cursor, each valid for its `parts` entry; BAD_USER_INPUT otherwise. */
export function decodeCursor(cursor: string, parts: readonly CursorPart[]): string[] {
  const text = /^[A-Za-z0-9_-]{1,200}$/.test(cursor) ? Buffer.from(cursor, "base64url").toString() : "";
  const values = text.split(":");
  if (values.length !== parts.length || !values.every((v, k) => validPart(v, parts[k]))) {
    throw new BadUserInputError(`Malformed cursor "${cursor}": pass an endCursor this API returned.`, {
      argument: "after",
    });
  }
  return values;
}

/** Checks a page size: 1..max. Larger pages are refused, never silently clamped. */
export function checkPageSize(first: number, max: number): number {
  if (!Number.isInteger(first) || first < 1 || first > max) {
    throw new BadUserInputError(`first must be between 1 and ${max}, got ${first}.`, {
      argument: "first",
      max,
    });
  }
  return first;
}

/** At most `max` distinct symbols in one request: BAD_USER_INPUT for more. */
export function checkSymbolCount(symbols: ReadonlySet<string> | readonly string[], max: number): void {
  const n = "size" in symbols ? symbols.size : symbols.length;
  if (n > max) throw new BadUserInputError(`At most ${max} symbols at once.`, { argument: "symbols" });
}

/**
 * One page of a connection from `rows` fetched with one extra row (which tells whether another page
 * follows). Edges, with a cursor each, and the end cursor are made only if the query selects them.
 */
export function connectionOf<T>(rows: T[], size: number, cursorOf: (row: T) => string) {
  const nodes = rows.length > size ? rows.slice(0, size) : rows;
  return {
    nodes,
    get edges() {
      return nodes.map((node) => ({ cursor: cursorOf(node), node }));
    },
    pageInfo: {
      hasNextPage: rows.length > size,
      // Only when asked: a page read without its cursors' columns has none to make.
      get endCursor() {
        return nodes.length ? cursorOf(nodes[nodes.length - 1]) : null;
      },
    },
  };
}

/** The arguments of every time-ranged, cursor-paged list (quotes, windowAggregates). */
@ArgsType()
export class RangePageArgs {
  @Field(() => [String], { nullable: true })
  symbols?: string[] | null;

  @Field(() => Date, { nullable: true })
  from?: Date | null;

  @Field(() => Date, { nullable: true })
  to?: Date | null;

  @Field(() => Int, { defaultValue: 100, nullable: true })
  first?: number | null;

  @Field(() => String, { nullable: true })
  after?: string | null;

  @Field(() => SortOrder, { defaultValue: SortOrder.DESC, nullable: true })
  order?: SortOrder | null;
}

/** The shared arguments checked (page size within the cap, from not after to) and with defaults applied. */
export function rangePage(args: RangePageArgs, maxPageSize: number) {
  const size = checkPageSize(args.first ?? 100, maxPageSize);
  if (args.from && args.to && args.from > args.to) {
    throw new BadUserInputError("from must not be after to.", { argument: "from" });
  }
  return {
    size,
    order: args.order ?? SortOrder.DESC,
    symbols: args.symbols ? [...new Set(args.symbols)] : undefined,
    from: args.from ?? undefined,
    to: args.to ?? undefined,
  };
}

/** The fields of a selection set, fragments followed (directives not evaluated). */
function* fieldsOf(set: SelectionSetNode | undefined, info: GraphQLResolveInfo): Generator<FieldNode> {
  if (!set) return;
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) yield sel;
    else if (sel.kind === Kind.INLINE_FRAGMENT) yield* fieldsOf(sel.selectionSet, info);
    else yield* fieldsOf(info.fragments[sel.name.value]?.selectionSet, info);
  }
}

/**
 * What a connection field's query asks of its nodes: the names of the fields selected on them (under
 * `nodes` and under `edges { node }`), and whether it asks for cursors (`edges` or `pageInfo`), so that
 * only those columns are read. @skip and @include are not evaluated: a field under them counts as
 * selected, which reads a column too many, never one too few.
 */
function nodeSelection(info: GraphQLResolveInfo): { fields: Set<string>; cursors: boolean } {
  const fields = new Set<string>();
  let cursors = false;
  for (const root of info.fieldNodes)
    for (const f of fieldsOf(root.selectionSet, info)) {
      const name = f.name.value;
      if (name === "nodes") for (const n of fieldsOf(f.selectionSet, info)) fields.add(n.name.value);
      else if (name === "edges") {
        cursors = true;
        for (const e of fieldsOf(f.selectionSet, info))
          if (e.name.value === "node")
            for (const n of fieldsOf(e.selectionSet, info)) fields.add(n.name.value);
      } else if (name === "pageInfo") cursors = true;
    }
  return { fields, cursors };
}

/**
 * The row properties a connection's page reads: those `reads` names for each node field selected, and
 * `cursorKeys` when cursors are asked for. Undefined (read the whole row) when a field is selected that
 * `reads` does not name, so that a field added later is never served from a row that lacks it.
 */
export function selectedColumns<K extends string>(
  info: GraphQLResolveInfo,
  reads: Record<string, K[]>,
  cursorKeys: K[],
): K[] | undefined {
  const { fields, cursors } = nodeSelection(info);
  const columns: K[] = cursors ? [...cursorKeys] : [];
  for (const f of fields) {
    const r = reads[f];
    if (!r) return undefined;
    columns.push(...r);
  }
  return columns;
}
