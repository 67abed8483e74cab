import {
  ApolloClient,
  ApolloLink,
  CombinedGraphQLErrors,
  gql,
  HttpLink,
  InMemoryCache,
  split,
} from "@apollo/client";
import { BatchHttpLink } from "@apollo/client/link/batch-http";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import {
  cacheExchange,
  Client as UrqlClient,
  type CombinedError,
  fetchExchange,
  subscriptionExchange,
} from "@urql/core";
import { createClient, type Client as WsClient } from "graphql-ws";
import WebSocket from "ws";
import { Role } from "../../src/policy/principal";
import { mintToken } from "../../src/policy/tokens";
import { grantEntitlements } from "../support/governance";
import { seedQuotes, seedWindows } from "../support/seed";
import { startTestPlatform, TEST_SECRET, type TestPlatform } from "../support/server";

// Popular GraphQL clients, each with its defaults, against a running platform (mock market at 60x, so
// that a 5-minute top price stock comes every 5 s): every page of quotes and windows by cursor, a
// subscription event, and clean errors for a page over the limit and for an expired token.
jest.setTimeout(120_000);

const HISTORY = new Date("2026-01-05T10:00:00Z");
const SYMBOLS = ["ZZA", "ZZB"];
const PER_SYMBOL = 230;
const ENDS = Array.from({ length: 130 }, (_, i) => new Date(HISTORY.getTime() + 60_000 + i * 10_000));

let t: TestPlatform;
// graphql-request types itself as an ES module; loaded as such (jest runs its CommonJS build).
let gr: typeof import("graphql-request", { with: { "resolution-mode": "import" } });
let token: string;
let expired: string;
const disposers: (() => unknown)[] = [];

beforeAll(async () => {
  t = await startTestPlatform(
    { INGEST: "on" },
    { feed: { seed: 3, symbols: 6, rate: 500, speed: 60, start: "2026-01-05T14:29:00Z" } },
    async (url) => {
      // History the live feed never touches: symbols of their own, hours before its start.
      await seedQuotes(url, { symbols: SYMBOLS, perSymbol: PER_SYMBOL, start: HISTORY, marketNow: null });
      await seedWindows(url, { symbols: SYMBOLS, ends: ENDS, marketNow: null });
    },
  );
  await grantEntitlements(t, "alice");
  gr = await import("graphql-request");
  token = await t.token("alice", [Role.USER]);
  expired = await mintToken(TEST_SECRET, "alice", [Role.USER], -60);
});
afterAll(async () => {
  for (const dispose of disposers) await dispose();
  await t.close();
});

const QUOTES = `query Quotes($after: String) {
  quotes(symbols: ["ZZA", "ZZB"], first: 100, after: $after) {
    nodes { id symbol eventTime price } pageInfo { hasNextPage endCursor }
  }
}`;
const WINDOWS = `query Windows($after: String) {
  windowAggregates(size: ONE_MINUTE, symbols: ["ZZA", "ZZB"], first: 100, after: $after) {
    nodes { symbol windowEnd close } pageInfo { hasNextPage endCursor }
  }
}`;
const OVER_LIMIT = `{ quotes(first: 1001) { nodes { id } } }`;
const TOP_PRICE = `subscription { topPriceStock { windowStart windowEnd entries { symbol value } delayed } }`;

interface Connection {
  nodes: Record<string, unknown>[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** Pages a connection to its end with `fetchPage(after)`; returns every node and the number of pages. */
async function pageAll(fetchPage: (after: string | null) => Promise<Connection>) {
  const nodes: Record<string, unknown>[] = [];
  let after: string | null = null;
  let pages = 0;
  for (;;) {
    const page = await fetchPage(after);
    pages++;
    nodes.push(...page.nodes);
    if (!page.pageInfo.hasNextPage) return { nodes, pages };
    after = page.pageInfo.endCursor;
  }
}

/** Checks what paging to the end returned: every row once, newest first. */
function expectAllQuotes({ nodes, pages }: { nodes: Record<string, unknown>[]; pages: number }) {
  expect(pages).toBe(Math.ceil((SYMBOLS.length * PER_SYMBOL) / 100));
  expect(nodes).toHaveLength(SYMBOLS.length * PER_SYMBOL);
  expect(new Set(nodes.map((n) => n.id)).size).toBe(nodes.length);
  const times = nodes.map((n) => Date.parse(n.eventTime as string));
  expect(times.every((x, i) => i === 0 || x <= times[i - 1])).toBe(true);
}

function expectAllWindows({ nodes, pages }: { nodes: Record<string, unknown>[]; pages: number }) {
  expect(pages).toBe(Math.ceil((SYMBOLS.length * ENDS.length) / 100));
  expect(nodes).toHaveLength(SYMBOLS.length * ENDS.length);
  expect(new Set(nodes.map((n) => `${n.symbol} ${n.windowEnd}`)).size).toBe(nodes.length);
}

/** A top price stock event, as the clients deliver it. */
interface TopPrice {
  topPriceStock: { windowStart: string; windowEnd: string; entries: { symbol: string }[]; delayed: boolean };
}

function expectTopPrice(data: TopPrice | null | undefined) {
  const r = data!.topPriceStock;
  expect(Date.parse(r.windowEnd) % 300_000).toBe(0);
  expect(Date.parse(r.windowEnd) - Date.parse(r.windowStart)).toBe(300_000);
  expect(r.entries).toHaveLength(1);
  expect(r.delayed).toBe(false);
}

function wsClient(bearer: string): WsClient {
  const client = createClient({
    url: t.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${bearer}` },
    retryAttempts: 0,
  });
  disposers.push(() => client.dispose());
  return client;
}

/** Resolves with the first value or error of a subscription, whichever comes first. */
function first<T>(subscribe: (next: (v: T) => void, error: (e: unknown) => void) => () => void) {
  return new Promise<{ value?: T; error?: unknown }>((resolve) => {
    let stop = () => {};
    stop = subscribe(
      (value) => {
        stop();
        resolve({ value });
      },
      (error) => resolve({ error }),
    );
  });
}

describe("urql (@urql/core, default client: queries by GET)", () => {
  const methods: string[] = [];
  const urql = (bearer: string) =>
    new UrqlClient({
      url: t.url,
      exchanges: [
        cacheExchange,
        subscriptionExchange({
          forwardSubscription: (request) => ({
            subscribe: (sink) => ({
              unsubscribe: wsClient(bearer).subscribe({ ...request, query: request.query ?? "" }, sink),
            }),
          }),
        }),
        fetchExchange,
      ],
      fetchOptions: { headers: { authorization: `Bearer ${bearer}` } },
      // Watching the method it chooses, not changing it.
      fetch: (input, init) => {
        methods.push(init?.method ?? "GET");
        return fetch(input, init);
      },
    });

  test("pages quotes and windowAggregates to the end by cursor, by GET", async () => {
    const client = urql(token);
    const page = (query: string, field: string) => async (after: string | null) => {
      const r = await client.query(query, { after }, { requestPolicy: "network-only" }).toPromise();
      expect(r.error).toBeUndefined();
      return (r.data as Record<string, Connection>)[field];
    };
    expectAllQuotes(await pageAll(page(QUOTES, "quotes")));
    expectAllWindows(await pageAll(page(WINDOWS, "windowAggregates")));
    expect(new Set(methods)).toEqual(new Set(["GET"]));
  });

  test("receives a topPriceStock event", async () => {
    const client = urql(token);
    const { value, error } = await first<TopPrice>((next, fail) => {
      const s = client.subscription(TOP_PRICE, {}).subscribe((r) => (r.error ? fail(r.error) : next(r.data)));
      return () => s.unsubscribe();
    });
    expect(error).toBeUndefined();
    expectTopPrice(value);
  });

  test("a page over the limit and an expired token are clean GraphQL errors", async () => {
    const over = await urql(token).query(OVER_LIMIT, {}).toPromise();
    expect(over.error?.graphQLErrors[0].extensions.code).toBe("BAD_USER_INPUT");
    expect(over.error?.networkError).toBeUndefined();
    const denied = await urql(expired).query(`{ me { id } }`, {}).toPromise();
    expect(denied.error?.graphQLErrors[0]).toMatchObject({
      message: "The token has expired.",
      extensions: { code: "UNAUTHENTICATED" },
    });
    expect(denied.error?.response?.status).toBe(401);
    const stream = await first<TopPrice>((next, fail) => {
      const s = urql(expired)
        .subscription(TOP_PRICE, {})
        .subscribe((r) => (r.error ? fail(r.error) : next(r.data)));
      return () => s.unsubscribe();
    });
    // graphql-ws's close, as urql hands it on: 4403, the token refused.
    expect((stream.error as CombinedError).networkError).toMatchObject({ code: 4403 });
  });
});

describe("graphql-request", () => {
  test("pages quotes and windowAggregates to the end by cursor", async () => {
    const client = new gr.GraphQLClient(t.url, { headers: { authorization: `Bearer ${token}` } });
    const page = (query: string, field: string) => async (after: string | null) =>
      (await client.request<Record<string, Connection>>(query, { after }))[field];
    expectAllQuotes(await pageAll(page(QUOTES, "quotes")));
    expectAllWindows(await pageAll(page(WINDOWS, "windowAggregates")));
  });

  test("receives a topPriceStock event (graphql-request speaks HTTP only: over graphql-ws)", async () => {
    const { value, error } = await first<TopPrice>((next, fail) =>
      wsClient(token).subscribe<TopPrice>(
        { query: TOP_PRICE },
        { next: (r) => next(r.data as TopPrice), error: fail, complete: () => {} },
      ),
    );
    expect(error).toBeUndefined();
    expectTopPrice(value);
  });

  test("a page over the limit and an expired token raise ClientError with the server's codes", async () => {
    const over = await new gr.GraphQLClient(t.url, { headers: { authorization: `Bearer ${token}` } })
      .request(OVER_LIMIT)
      .catch((e: unknown) => e);
    expect(over).toBeInstanceOf(gr.ClientError);
    // It asks for application/graphql-response+json first: a request error is then 400, as the spec says.
    expect((over as InstanceType<typeof gr.ClientError>).response.status).toBe(400);
    expect((over as InstanceType<typeof gr.ClientError>).response.errors?.[0].extensions?.code).toBe(
      "BAD_USER_INPUT",
    );
    const denied = await new gr.GraphQLClient(t.url, { headers: { authorization: `Bearer ${expired}` } })
      .request(`{ me { id } }`)
      .catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(gr.ClientError);
    expect((denied as InstanceType<typeof gr.ClientError>).response.status).toBe(401);
    expect((denied as InstanceType<typeof gr.ClientError>).response.errors?.[0].extensions?.code).toBe(
      "UNAUTHENTICATED",
    );
  });
});

describe("Apollo Client 4 (HttpLink and GraphQLWsLink)", () => {
  const apollo = (
    bearer: string,
    http: ApolloLink = new HttpLink({ uri: t.url, headers: { authorization: `Bearer ${bearer}` } }),
  ) => {
    const link = split(
      ({ query }) => {
        const def = getMainDefinition(query);
        return def.kind === "OperationDefinition" && def.operation === "subscription";
      },
      new GraphQLWsLink(wsClient(bearer)),
      http,
    );
    const client = new ApolloClient({ link, cache: new InMemoryCache() });
    disposers.push(() => client.stop());
    return client;
  };

  test("pages quotes and windowAggregates to the end by cursor", async () => {
    const client = apollo(token);
    const page = (query: string, field: string) => async (after: string | null) => {
      const r = await client.query<Record<string, Connection>>({
        query: gql(query),
        variables: { after },
        fetchPolicy: "network-only",
      });
      return r.data![field];
    };
    expectAllQuotes(await pageAll(page(QUOTES, "quotes")));
    expectAllWindows(await pageAll(page(WINDOWS, "windowAggregates")));
  });

  test("BatchHttpLink: concurrent queries go as one batch, each answered", async () => {
    const batches: number[] = [];
    const client = apollo(
      token,
      new BatchHttpLink({
        uri: t.url,
        headers: { authorization: `Bearer ${token}` },
        batchMax: 5,
        fetch: async (input, init) => {
          batches.push((JSON.parse(String(init?.body)) as unknown[]).length);
          return fetch(input, init);
        },
      }),
    );
    const symbols = ["ZZA", "ZZB", "ZZA", "ZZB"];
    const results = await Promise.all(
      symbols.map((s, i) =>
        client.query<{ quotes: Connection }>({
          query: gql`query Q${i}($s: [String!]) { quotes(symbols: $s, first: ${i + 1}) { nodes { symbol } } }`,
          variables: { s: [s] },
        }),
      ),
    );
    expect(results.map((r) => r.data!.quotes.nodes.map((n) => n.symbol))).toEqual(
      symbols.map((s, i) => Array(i + 1).fill(s)),
    );
    expect(batches).toEqual([4]);
  });

  test("receives a topPriceStock event over GraphQLWsLink", async () => {
    const client = apollo(token);
    const { value, error } = await first<TopPrice>((next, fail) => {
      const s = client
        .subscribe<TopPrice>({ query: gql(TOP_PRICE) })
        .subscribe({ next: (r) => (r.error ? fail(r.error) : next(r.data as TopPrice)), error: fail });
      return () => s.unsubscribe();
    });
    expect(error).toBeUndefined();
    expectTopPrice(value);
  });

  test("a page over the limit and an expired token are CombinedGraphQLErrors with the server's codes", async () => {
    const over = await apollo(token)
      .query({ query: gql(OVER_LIMIT) })
      .catch((e: unknown) => e);
    expect(CombinedGraphQLErrors.is(over)).toBe(true);
    expect((over as CombinedGraphQLErrors).errors[0].extensions?.code).toBe("BAD_USER_INPUT");
    const denied = await apollo(expired)
      .query({
        query: gql`
          {
            me {
              id
            }
          }
        `,
      })
      .catch((e: unknown) => e);
    expect(CombinedGraphQLErrors.is(denied)).toBe(true);
    expect((denied as CombinedGraphQLErrors).errors[0].extensions?.code).toBe("UNAUTHENTICATED");
    const stream = await first<TopPrice>((next, fail) => {
      const s = apollo(expired)
        .subscribe<TopPrice>({ query: gql(TOP_PRICE) })
        .subscribe({ next: (r) => (r.error ? fail(r.error) : next(r.data as TopPrice)), error: fail });
      return () => s.unsubscribe();
    });
    expect(stream.value).toBeUndefined();
    expect(String((stream.error as { message?: string })?.message ?? stream.error)).toMatch(/4403|Forbidden/);
  });
});
