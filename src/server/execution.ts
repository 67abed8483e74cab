import {
  execute,
  getVariableValues,
  GraphQLError,
  OperationTypeNode,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from "graphql";
import { compileQuery, isCompiledQuery, type CompiledQuery } from "graphql-jit";
import { LRUCache } from "lru-cache";
import { log } from "../log";
import { graphqlExecutions } from "../metrics";

/** graphql-js's own bound on variable coercion errors per request. */
const MAX_VARIABLE_ERRORS = 50;

const ranCompiled = graphqlExecutions.labels({ engine: "compiled" });
const ranGraphqlJs = graphqlExecutions.labels({ engine: "graphql-js" });

export interface OperationArgs {
  document: DocumentNode;
  /** The operation to run, as resolved from the document and operation name (none if unknown). */
  operation: OperationDefinitionNode | null | undefined;
  operationName?: string | null;
  variableValues?: Record<string, unknown> | null;
  contextValue: unknown;
}

export interface ExecutorOptions {
  /** Compiled operations kept; the least recently used is dropped first. @default 1000 */
  cacheSize?: number;
}

/**
 * Executes queries compiled by graphql-jit: each operation is compiled once (on first use, kept in a
 * bounded LRU cache keyed by its operation node, which Apollo's document cache keeps stable for a
 * query text), then runs without graphql-js's per-field work. Mutations, subscriptions, unknown
 * operations and whatever graphql-jit cannot compile run on graphql-js `execute`.
 *
 * Results match graphql-js's: variables are coerced by graphql-js (same errors, same codes), and field
 * errors are rebuilt as graphql-js GraphQLErrors, because graphql-jit's own error objects leave
 * `extensions` undefined when the thrown error has none, which Apollo's error formatting cannot read
 * (it then answers a bare "Internal server error", skipping `formatError`).
 */
export function createExecutor(schema: GraphQLSchema, opts: ExecutorOptions = {}) {
  // false: graphql-jit could not compile the operation; graphql-js runs it.
  const compiled = new LRUCache<OperationDefinitionNode, CompiledQuery | false>({
    max: opts.cacheSize ?? 1000,
  });

  function compile(document: DocumentNode, operation: OperationDefinitionNode): CompiledQuery | false {
    const operationName = operation.name?.value;
    let result: CompiledQuery | ExecutionResult;
    try {
      result = compileQuery<Record<string, unknown>>(schema, document, operationName, {
        // Skip/include per path: without it, a fragment spread in several places under different
        // @skip/@include conditions can lose its fields.
        useExperimentalPathBasedSkipInclude: true,
        // Its errors are rebuilt below, where the thrown error's own stack is kept.
        disablingCapturingStackErrors: true,
      });
    } catch (err) {
      result = { errors: [err as GraphQLError] };
    }
    if (isCompiledQuery(result)) return result;
    log.warn(
      { operationName, errors: result.errors?.map((e) => e.message) },
      "operation not compiled: executed by graphql-js",
    );
    return false;
  }

  return async function executeOperation(args: OperationArgs): Promise<ExecutionResult> {
    const { document, operation } = args;
    const byGraphqlJs = () => {
      ranGraphqlJs.inc();
      return execute({
        schema,
        document,
        operationName: args.operationName,
        variableValues: args.variableValues,
        contextValue: args.contextValue,
      });
    };
    if (operation?.operation !== OperationTypeNode.QUERY) return byGraphqlJs();
    let query = compiled.get(operation);
    if (query === undefined) {
      query = compile(document, operation);
      compiled.set(operation, query);
    }
    if (!query) return byGraphqlJs();
    const variables = args.variableValues ?? {};
    const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variables, {
      maxErrors: MAX_VARIABLE_ERRORS,
    });
    if (coerced.errors) return { errors: coerced.errors };
    const result = await query.query(undefined, args.contextValue, variables);
    // No data: graphql-jit refused variables graphql-js accepted, before any resolver ran.
    if (result.data === undefined) return byGraphqlJs();
    ranCompiled.inc();
    return result.errors ? { ...result, errors: result.errors.map(asGraphQLJsError) } : result;
  };
}

export type OperationExecutor = ReturnType<typeof createExecutor>;

/**
 * A graphql-jit field error as graphql-js's `locatedError` would have built it: the thrown error as
 * `originalError` (its extensions, e.g. a client error's code, carried over), the response path, and
 * graphql-jit's locations of the field.
 */
function asGraphQLJsError(error: GraphQLError): GraphQLError {
  const original: unknown = error.originalError;
  if (original instanceof GraphQLError && original.path && original.extensions) return original;
  const located = new GraphQLError(error.message, {
    path: error.path,
    originalError: original instanceof Error ? original : undefined,
  });
  return Object.assign(located, { locations: error.locations });
}
