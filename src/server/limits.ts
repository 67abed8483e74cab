import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import {
  GraphQLError,
  validate,
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
import { ClientError, ErrorCode } from "../errors";
import { checkPageSize } from "../resolvers/page";

const tooComplex = (message: string) =>
  new GraphQLError(message, { extensions: { code: ErrorCode.QUERY_TOO_COMPLEX, http: { status: 400 } } });

/** Depth and alias rules, reporting QUERY_TOO_COMPLEX instead of throwing out of validation. */
function limitRules(limits: Limits): ValidationRule[] {
  const report = (context: ValidationContext | null, err: GraphQLError) =>
    context?.reportError(tooComplex(err.message.replace(/^Syntax Error: /, "")));
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
  const checkedDocuments = new WeakMap<DocumentNode, readonly GraphQLError[]>();
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
  return function checkLimits(
    document: DocumentNode,
    variables: Record<string, unknown> | undefined,
    operationName: string | null | undefined,
  ): readonly GraphQLError[] {
    // Apollo hands back the same DocumentNode for a cached query text, so depth and aliases are
    // counted once per distinct query; cost depends on variables and is estimated every time.
    let errors = checkedDocuments.get(document);
    if (!errors) checkedDocuments.set(document, (errors = validate(schema, document, rules)));
    if (errors.length) return errors;
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
          tooComplex(
            `Query cost ${cost} exceeds the limit of ${limits.maxCost}: ask for fewer rows (first) or fields.`,
          ),
        ]
      : [];
  };
}

export type LimitChecker = ReturnType<typeof createLimitChecker>;
