import {
  buildSchema,
  execute,
  getOperationAST,
  GraphQLError,
  parse,
  type ExecutionResult,
  type GraphQLFieldResolver,
  type GraphQLObjectType,
} from "graphql";
import { compileQuery } from "graphql-jit";
import { ForbiddenError } from "../../src/errors";
import { setLogLevel } from "../../src/log";
import { registry } from "../../src/metrics";
import { createExecutor } from "../../src/server/execution";

// The compiled executor answers exactly what graphql-js answers, errors included.
jest.mock("graphql-jit", () => {
  const actual = jest.requireActual("graphql-jit");
  return { ...actual, compileQuery: jest.fn(actual.compileQuery) };
});
const compile = compileQuery as jest.MockedFunction<typeof compileQuery>;
beforeAll(() => setLogLevel(process.env.LOG_LEVEL ?? "silent"));

const schema = buildSchema(`
  type Item { id: ID! name: String! tags: [String!]! price: Float broken: String! child: Item }
  type Query {
    item(id: ID!): Item
    items(first: Int = 2, tags: [String!]): [Item!]
    boom: String
    refused: String
    hello(name: String = "world"): String
  }
  type Mutation { touch: Int }
`);

interface Item {
  id: string;
  name: string;
  tags: string[];
  price: unknown;
  broken: string | null;
}
const ITEMS: Item[] = [
  { id: "1", name: "one", tags: ["a"], price: 1.5, broken: "fine" },
  { id: "2", name: "two", tags: ["a", "b"], price: "not a number", broken: null },
  { id: "3", name: "three", tags: [], price: null, broken: "fine" },
];
const thrown = new Error("connect ECONNREFUSED 10.0.0.7:5432 (SELECT secret FROM t)");
const resolvers: Record<string, Record<string, GraphQLFieldResolver<unknown, { calls: string[] }>>> = {
  Query: {
    item: (_, { id }) => ITEMS.find((i) => i.id === id) ?? null,
    items: async (_, { first, tags }, ctx) => {
      ctx.calls.push("items");
      return ITEMS.filter((i) => !tags || tags.some((t: string) => i.tags.includes(t))).slice(0, first);
    },
    boom: () => {
      throw thrown;
    },
    refused: () => {
      throw new ForbiddenError("Not for you.", { coordinate: "Query.refused" });
    },
    hello: (_, { name }) => `hello ${name}`,
  },
  Item: { child: (item) => ITEMS.find((i) => Number(i.id) === Number((item as Item).id) + 1) ?? null },
  Mutation: { touch: (_, __, ctx) => ctx.calls.push("touch") },
};
for (const [type, fields] of Object.entries(resolvers)) {
  const defs = (schema.getType(type) as GraphQLObjectType).getFields();
  for (const [name, resolve] of Object.entries(fields)) defs[name].resolve = resolve;
}

const executor = createExecutor(schema);

async function both(query: string, variables?: Record<string, unknown>, operationName?: string) {
  const document = parse(query);
  const operation = getOperationAST(document, operationName);
  const compiledCtx = { calls: [] as string[] };
  const jsCtx = { calls: [] as string[] };
  const compiled = await executor({
    document,
    operation,
    operationName,
    variableValues: variables,
    contextValue: compiledCtx,
  });
  const js = (await execute({
    schema,
    document,
    operationName,
    variableValues: variables,
    contextValue: jsCtx,
  })) as ExecutionResult;
  expect(compiledCtx.calls).toEqual(jsCtx.calls);
  return { compiled, js };
}

/** The response as a client receives it. */
const wire = (r: ExecutionResult) => JSON.parse(JSON.stringify({ data: r.data, errors: r.errors }));

async function executions(engine: string): Promise<number> {
  const metric = await registry.getSingleMetric("tickgraph_graphql_executions_total")!.get();
  return metric.values.find((v) => v.labels.engine === engine)?.value ?? 0;
}

describe("the same response as graphql-js", () => {
  test.each([
    ["fields, aliases and nesting", `{ items(first: 3) { id n: name child { id child { name } } } }`],
    ["arguments with defaults", `{ hello items { id } }`],
    ["list arguments", `{ items(first: 3, tags: ["b"]) { id tags } }`],
    ["named and inline fragments", `{ items { ...F ... on Item { tags } } } fragment F on Item { id name }`],
    [
      "one fragment spread in two places under different @skip",
      `{ item(id: "1") { a: child { ...C @skip(if: true) } b: child { ...C @skip(if: false) } } } fragment C on Item { id name }`,
    ],
    ["introspection", `{ __typename __type(name: "Item") { fields { name type { name kind } } } }`],
    ["a field error", `{ boom hello }`],
    ["a client error", `{ refused hello }`],
    ["a value that cannot be serialized", `{ items(first: 3) { id price } }`],
    ["null in a non-null field, nulling its parent", `{ items(first: 3) { id broken } }`],
    ["a missing item", `{ item(id: "9") { id } }`],
  ])("%s", async (_name, query) => {
    const { compiled, js } = await both(query);
    expect(wire(compiled)).toEqual(wire(js));
  });

  test.each([
    [{ v: true }, undefined],
    [{ v: false }, undefined],
    [{}, undefined],
    [{ v: true }, "Named"],
  ])("@include and @skip with variables %j", async (variables, operationName) => {
    const query = `
      query Anonymous($v: Boolean = true) { items { id name @include(if: $v) tags @skip(if: $v) } }
      query Named($v: Boolean!) {
        item(id: "1") { a: child @skip(if: $v) { ...C } b: child { ...C @include(if: $v) } c: child { ...C @skip(if: $v) } }
      }
      fragment C on Item { id name }`;
    const { compiled, js } = await both(query, variables, operationName ?? "Anonymous");
    expect(wire(compiled)).toEqual(wire(js));
    if (operationName === "Named")
      expect(compiled.data).toEqual({ item: { b: { id: "2", name: "two" }, c: {} } });
  });

  test("variables graphql-js refuses are refused with its errors (Apollo reports them as BAD_USER_INPUT)", async () => {
    const query = `query($f: Int, $t: [String!]) { items(first: $f, tags: $t) { id } }`;
    const { compiled, js } = await both(query, { f: "two", t: ["a", null] });
    expect(compiled.data).toBeUndefined();
    expect(compiled.errors).toHaveLength(2);
    expect(wire(compiled)).toEqual(wire(js));
    expect(compiled.errors![0].nodes?.[0].kind).toBe("VariableDefinition");
  });
});

describe("errors are graphql-js GraphQLErrors", () => {
  test("an unexpected error keeps its cause, with extensions Apollo can read", async () => {
    const { compiled, js } = await both(`{ hello boom }`);
    const [error] = compiled.errors!;
    expect(error).toBeInstanceOf(GraphQLError);
    expect(error.constructor).toBe(GraphQLError);
    expect(error.extensions).toEqual({});
    expect(error.originalError).toBe(thrown);
    expect(error.path).toEqual(["boom"]);
    expect(error.locations).toEqual(js.errors![0].locations);
    expect(error.locations).toEqual([{ line: 1, column: 9 }]);
  });

  test("a client error keeps its code and extensions, and stays the original error's", async () => {
    const { compiled } = await both(`{ refused }`);
    const [error] = compiled.errors!;
    expect(error.extensions).toEqual({
      code: "FORBIDDEN",
      coordinate: "Query.refused",
      http: { status: 403 },
    });
    expect(error.originalError).toBeInstanceOf(ForbiddenError);
  });
});

describe("what runs on graphql-js", () => {
  test("a query graphql-jit cannot compile falls back, and is not compiled again", async () => {
    const before = await executions("graphql-js");
    compile.mockClear();
    compile.mockReturnValueOnce({ errors: [new GraphQLError("not supported by the compiler")] });
    const document = parse(`{ hello(name: "fallback") }`);
    const operation = getOperationAST(document)!;
    for (let i = 0; i < 2; i++) {
      const r = await executor({ document, operation, contextValue: { calls: [] } });
      expect(r).toEqual({ data: { hello: "hello fallback" } });
    }
    expect(compile).toHaveBeenCalledTimes(1);
    expect((await executions("graphql-js")) - before).toBe(2);
  });

  test("a compiled query is compiled once and then reused", async () => {
    const before = await executions("compiled");
    compile.mockClear();
    const document = parse(`{ hello(name: "cached") }`);
    const operation = getOperationAST(document)!;
    for (let i = 0; i < 3; i++) await executor({ document, operation, contextValue: { calls: [] } });
    expect(compile).toHaveBeenCalledTimes(1);
    expect((await executions("compiled")) - before).toBe(3);
  });

  test("mutations and unknown operations", async () => {
    compile.mockClear();
    const { compiled, js } = await both(`mutation { touch }`);
    expect(wire(compiled)).toEqual(wire(js));
    const unknown = await both(`query A { hello } query B { hello }`, undefined, "C");
    expect(wire(unknown.compiled)).toEqual(wire(unknown.js));
    expect(unknown.compiled.errors?.[0].message).toMatch(/Unknown operation named "C"/);
    expect(compile).not.toHaveBeenCalled();
  });
});
