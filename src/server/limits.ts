import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import {
  GraphQLError,
  validate,
  visit,
  type DocumentNode,
  type GraphQLSchema,
  type ValidationContext,
  type ValidationRule,
} from "graphql";
import { getComplexity, simpleEstimator, type ComplexityEstimator } from "graphql-query-complexity";
import type { Limits } from "../config/config";
import { BadUserInputError, ClientError, QueryTooComplexError } from "../errors";
import { checkPageSize } from "../resolvers/page";
import { TOP_PRICE_PERIOD_MS } from "../windows/windows";

/** Cost results remembered per document (one per distinct set of variables). */
const COSTS_PER_DOCUMENT = 256;
/** Most windows a history query may span (the resolvers refuse more). */
const MAX_WINDOWS = 1000;
/** Window ends are 10 s apart. */
const HOP_MS = 10_000;

/** Row counts of tables whose lists are returned whole, as last read (see `LiveSizes.refresh`). */
export interface ListSizes {
  instruments: number;
  grants: number;
  requests: number;
  /** Field coordinates of the schema (fieldPolicies lists them all). */
  fields: number;
}

type Args = Record<string, unknown>;

/** Windows with an end in [from, to) every `stepMs`, within what the resolvers allow. */
function windowsIn(args: Args, stepMs: number, fallback: number): number {
  const { from, to } = args as { from?: Date | null; to?: Date | null };
  if (!(from instanceof Date) || !(to instanceof Date)) return fallback;
  return Math.min(MAX_WINDOWS, Math.max(1, Math.ceil((to.getTime() - from.getTime()) / stepMs)));
}

const num = (v: unknown, fallback: number) => (typeof v === "number" ? v : fallback);
const count = (v: unknown, fallback: number) => (Array.isArray(v) ? v.length : fallback);

/**
 * How many rows each list field returns, at most, from its arguments (and the live size of the tables
 * it lists whole): every list counts toward the cost at its real size, not as one. A subscription's
 * figure is per event.
 */
const ROWS: Record<string, (args: Args, sizes: ListSizes) => number> = {
  "Query.quotes": (a) => num(a.first, 100),
  "Query.windowAggregates": (a) => num(a.first, 100),
  "Query.accessLog": (a) => num(a.first, 100),
  "Query.quarantine": (a) => num(a.first, 100),
  "Query.instruments": (_a, s) => s.instruments,
  "Query.latestQuotes": (a, s) => count(a.symbols, s.instruments),
  "Query.topSymbols": (a) => num(a.limit, 3),
  "Query.topSymbolsHistory": (a) => windowsIn(a, HOP_MS, MAX_WINDOWS) * num(a.limit, 3),
  "Query.topPriceStocks": (a) => windowsIn(a, TOP_PRICE_PERIOD_MS, 12) * num(a.limit, 1),
  "Query.topMovers": (a) => 2 * num(a.limit, 10),
  "Query.grants": (_a, s) => s.grants,
  "Query.entitlementReport": (_a, s) => s.grants,
  "Query.accessRequests": (_a, s) => s.requests,
  "Query.fieldPolicies": (_a, s) => s.fields,
  "Subscription.quoteTicks": (a) => count(a.symbols, 1),
  "Subscription.topSymbols": (a) => num(a.limit, 3),
  "Subscription.topPriceStock": (a) => num(a.limit, 1),
  "Subscription.topMovers": (a) => 2 * num(a.limit, 10),
};

/** Depth and alias rules, reporting QUERY_TOO_COMPLEX instead of throwing out of validation. */
function limitRules(limits: Limits): ValidationRule[] {
  const report = (context: ValidationContext | null, err: GraphQLError) =>
    context?.reportError(new QueryTooComplexError(err.message.replace(/^Syntax Error: /, "")));
  return [
    maxDepthRule({ n: limits.maxDepth, propagateOnRejection: false, onReject: [report] }),
    maxAliasesRule({ n: limits.maxAliases, propagateOnRejection: false, onReject: [report] }),
  ];
}

/** An operation's verdict: refused with `errors`, or allowed at `cost`. */
export type LimitVerdict = { errors: readonly GraphQLError[]; cost: number };

/**
 * Checks an operation against depth, alias and cost limits before it runs. One function for HTTP and
 * WebSocket, so that both paths refuse the same operations. Each list field costs its rows (see ROWS)
 * times its selection; `sizes` gives the live size of lists returned whole.
 */
export function createLimitChecker(schema: GraphQLSchema, limits: Limits, sizes: () => ListSizes) {
  const rules = limitRules(limits);
  const checkedDocuments = new WeakMap<
    DocumentNode,
    { errors: readonly GraphQLError[]; costs: Map<string, LimitVerdict> }
  >();
  // Page sizes are checked first, so that `first: 100000` reads as the bad input it is (BAD_USER_INPUT)
  // rather than as a costly query. Returning nothing hands the field on to the next estimator.
  const pageSizeEstimator: ComplexityEstimator = ({ args }) => {
    if ("first" in args && args.first != null) checkPageSize(args.first as number, limits.maxPageSize);
  };
  const listEstimator: ComplexityEstimator = ({ type, field, args, childComplexity }) => {
    const rows = ROWS[`${type.name}.${field.name}`];
    return rows ? 1 + Math.max(rows(args, sizes()), 1) * Math.max(childComplexity, 1) : undefined;
  };
  const estimators = [pageSizeEstimator, listEstimator, simpleEstimator({ defaultComplexity: 1 })];

  function estimate(
    document: DocumentNode,
    variables: Record<string, unknown> | undefined,
    operationName: string | null | undefined,
  ): LimitVerdict {
    let cost: number;
    try {
      cost = getComplexity({
        schema,
        query: document,
        variables: variables ?? {},
        operationName: operationName ?? undefined,
        estimators,
      });
    } catch (err) {
      if (err instanceof ClientError) return { errors: [err], cost: 0 };
      // Unknown operation name or bad variables: graphql-js reports those itself.
      if (err instanceof GraphQLError) return { errors: [], cost: 0 };
      throw err;
    }
    const errors =
      cost > limits.maxCost
        ? [
            new QueryTooComplexError(
              `Query cost ${cost} exceeds the limit of ${limits.maxCost}: ask for fewer rows (first, limit, a narrower range) or fields.`,
            ),
          ]
        : [];
    return { errors, cost };
  }

  /** Postgres text cannot hold NUL: an argument holding one is refused before it reaches a statement. */
  const nulInDocument = (document: DocumentNode): boolean => {
    let found = false;
    visit(document, {
      StringValue(node) {
        if (node.value.includes("\u0000")) found = true;
      },
    });
    return found;
  };
  const nulError = () =>
    new BadUserInputError("Arguments may not contain the NUL character (\\u0000).", { argument: "NUL" });

  return function checkLimits(
    document: DocumentNode,
    variables: Record<string, unknown> | undefined,
    operationName: string | null | undefined,
  ): LimitVerdict {
    // Apollo hands back the same DocumentNode for a cached query text, so depth and aliases are
    // counted once per distinct query, and its cost once per distinct set of variables.
    let checked = checkedDocuments.get(document);
    if (!checked) {
      const errors = validate(schema, document, rules);
      checked = {
        errors: errors.length || !nulInDocument(document) ? errors : [nulError()],
        costs: new Map(),
      };
      checkedDocuments.set(document, checked);
    }
    if (checked.errors.length) return { errors: checked.errors, cost: 0 };
    if (variables && holdsNul(variables)) return { errors: [nulError()], cost: 0 };
    const key = `${operationName ?? ""}\u0000${variables ? JSON.stringify(variables) : ""}`;
    let verdict = checked.costs.get(key);
    if (!verdict) {
      verdict = estimate(document, variables, operationName);
      if (checked.costs.size >= COSTS_PER_DOCUMENT) checked.costs.clear();
      checked.costs.set(key, verdict);
    }
    return verdict;
  };
}

export type LimitChecker = ReturnType<typeof createLimitChecker>;

/** Whether any string in `value` (a request's variables) holds NUL; iterative, so any depth is safe. */
function holdsNul(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === "string") {
      if (v.includes("\u0000")) return true;
    } else if (typeof v === "object" && v !== null) {
      for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push(child);
    }
  }
  return false;
}
