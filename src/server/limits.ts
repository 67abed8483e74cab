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
import {
  fieldExtensionsEstimator,
  getComplexity,
  simpleEstimator,
  type ComplexityEstimator,
} from "graphql-query-complexity";
import type { Limits } from "../config/config";
import { BadUserInputError, ClientError, QueryTooComplexError } from "../errors";
import { checkPageSize } from "../resolvers/page";

/** Cost results remembered per document (one per distinct set of variables). */
const COSTS_PER_DOCUMENT = 256;

/** Depth and alias rules, reporting QUERY_TOO_COMPLEX instead of throwing out of validation. */
function limitRules(limits: Limits): ValidationRule[] {
  const report = (context: ValidationContext | null, err: GraphQLError) =>
    context?.reportError(new QueryTooComplexError(err.message.replace(/^Syntax Error: /, "")));
  return [
    maxDepthRule({ n: limits.maxDepth, propagateOnRejection: false, onReject: [report] }),
    maxAliasesRule({ n: limits.maxAliases, propagateOnRejection: false, onReject: [report] }),
  ];
}

/**
 * Checks an operation against depth, alias and cost limits before it runs. One function for HTTP and
 * WebSocket, so that both paths refuse the same operations. Cost counts each list field's `first`.
 */
export function createLimitChecker(schema: GraphQLSchema, limits: Limits) {
  const rules = limitRules(limits);
  const checkedDocuments = new WeakMap<
    DocumentNode,
    { errors: readonly GraphQLError[]; costs: Map<string, readonly GraphQLError[]> }
  >();
  // Page sizes are checked first, so that `first: 100000` reads as the bad input it is (BAD_USER_INPUT)
  // rather than as a costly query. Returning nothing hands the field on to the next estimator.
  const pageSizeEstimator: ComplexityEstimator = ({ args }) => {
    if ("first" in args && args.first != null) checkPageSize(args.first as number, limits.maxPageSize);
  };
  const estimators = [
    pageSizeEstimator,
    fieldExtensionsEstimator(),
    simpleEstimator({ defaultComplexity: 1 }),
  ];
  function estimate(
    document: DocumentNode,
    variables: Record<string, unknown> | undefined,
    operationName: string | null | undefined,
  ): readonly GraphQLError[] {
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
      if (err instanceof ClientError) return [err];
      // Unknown operation name or bad variables: graphql-js reports those itself.
      if (err instanceof GraphQLError) return [];
      throw err;
    }
    return cost > limits.maxCost
      ? [
          new QueryTooComplexError(
            `Query cost ${cost} exceeds the limit of ${limits.maxCost}: ask for fewer rows (first) or fields.`,
          ),
        ]
      : [];
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
  ): readonly GraphQLError[] {
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
    if (checked.errors.length) return checked.errors;
    if (variables && holdsNul(variables)) return [nulError()];
    const key = `${operationName ?? ""}\u0000${variables ? JSON.stringify(variables) : ""}`;
    let costErrors = checked.costs.get(key);
    if (!costErrors) {
      costErrors = estimate(document, variables, operationName);
      if (checked.costs.size >= COSTS_PER_DOCUMENT) checked.costs.clear();
      checked.costs.set(key, costErrors);
    }
    return costErrors;
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
