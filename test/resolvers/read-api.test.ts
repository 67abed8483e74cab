import { seedQuotes } from "../support/seed";
import { startTestPlatform, type TestPlatform } from "../support/server";

let t: TestPlatform;
const SYMBOLS = ["AAPL", "MSFT", "NVDA"];

beforeAll(async () => {
  t = await startTestPlatform({}, {}, (url) => seedQuotes(url, { symbols: SYMBOLS, perSymbol: 250 }));
});
afterAll(() => t.close());

const PAGE = `query($symbols: [String!], $first: Int, $after: String, $order: SortOrder, $from: DateTime, $to: DateTime) {
  quotes(symbols: $symbols, first: $first, after: $after, order: $order, from: $from, to: $to) {
    edges { cursor node { id symbol eventTime seq price size } }
    nodes { id }
    pageInfo { hasNextPage endCursor }
  }
}`;

async function walk(variables: Record<string, unknown>) {
  const seen: { id: string; symbol: string; eventTime: string; seq: string }[] = [];
  let after: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const { body } = await t.gql(PAGE, { variables: { ...variables, after } });
    expect(body.errors).toBeUndefined();
    const conn = body.data.quotes;
    expect(conn.nodes.map((n: { id: string }) => n.id)).toEqual(
      conn.edges.map((e: { node: { id: string } }) => e.node.id),
    );
    seen.push(...conn.edges.map((e: { node: never }) => e.node));
    if (!conn.pageInfo.hasNextPage) return seen;
    after = conn.pageInfo.endCursor;
  }
  throw new Error("too many pages");
}

describe("quotes", () => {
  test("cursor pages walk every row of a symbol once, newest first", async () => {
    const rows = await walk({ symbols: ["MSFT"], first: 40 });
    expect(rows).toHaveLength(250);
    expect(new Set(rows.map((r) => r.id)).size).toBe(250);
    expect(rows.every((r) => r.symbol === "MSFT")).toBe(true);
    const seqs = rows.map((r) => Number(r.seq));
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
  });

  test("ascending pages across several symbols are ordered by (eventTime, id)", async () => {
    const rows = await walk({ symbols: ["AAPL", "NVDA"], first: 70, order: "ASC" });
    expect(rows).toHaveLength(500);
    const keys = rows.map((r) => [Date.parse(r.eventTime), Number(r.id)]);
    const sorted = [...keys].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    expect(keys).toEqual(sorted);
  });

  test("time range is half-open [from, to)", async () => {
    const from = "2026-01-05T14:30:10.000Z";
    const to = "2026-01-05T14:30:20.000Z";
    const rows = await walk({ symbols: ["AAPL"], from, to, first: 3 });
    expect(rows).toHaveLength(10);
    expect(rows.every((r) => r.eventTime >= from && r.eventTime < to)).toBe(true);
  });

  test("a page reads only the columns its selection needs, and serves the same values as the whole row", async () => {
    const page = async (selection: string, fragments = "", first = 30) => {
      const r = await t.gql(`{ quotes(symbols: ["NVDA"], first: ${first}) { ${selection} } } ${fragments}`);
      expect(r.body.errors).toBeUndefined();
      return r.body.data.quotes;
    };
    const ALL = `id symbol eventTime seq price size bid bidSize ask askSize exchange delayed cursor
      instrument { symbol exchange }`;
    const rows = (await page(`nodes { ${ALL} }`, "", 31)).nodes as Record<string, unknown>[];
    expect(rows).toHaveLength(31);
    const pick = (...keys: string[]) =>
      rows.slice(0, 30).map((r) => Object.fromEntries(keys.map((k) => [k, r[k]])));
    type Node = Record<string, unknown>;
    const nodes = (c: { nodes: Node[] }) => c.nodes;
    const edgeNodes = (c: { edges: { node: Node }[] }) => c.edges.map((e) => e.node);
    // Each shape on its own page: fields reached through nodes, edges, fragments and inline fragments.
    expect(nodes(await page(`nodes { price }`))).toEqual(pick("price"));
    expect(nodes(await page(`nodes { eventTime size }`))).toEqual(pick("eventTime", "size"));
    expect(edgeNodes(await page(`edges { node { ...Q } }`, `fragment Q on Quote { seq exchange }`))).toEqual(
      pick("seq", "exchange"),
    );
    expect(nodes(await page(`nodes { ... on Quote { bid ask } }`))).toEqual(pick("bid", "ask"));
    expect(nodes(await page(`nodes { cursor delayed }`))).toEqual(pick("cursor", "delayed"));
    expect(nodes(await page(`nodes { instrument { symbol exchange } }`))).toEqual(pick("instrument"));
    // Aliases, and cursors asked without any node field: the next page starts where the whole row's did.
    const aliased = await page(`a: nodes { p: price } b: nodes { s: symbol } pageInfo { endCursor }`);
    expect(aliased.a.map((n: Node) => n.p)).toEqual(pick("price").map((r) => r.price));
    expect(aliased.b.map((n: Node) => n.s)).toEqual(pick("symbol").map((r) => r.symbol));
    const next = await t.gql(
      `query($a: String) { quotes(symbols: ["NVDA"], first: 1, after: $a) { nodes { id } } }`,
      {
        variables: { a: aliased.pageInfo.endCursor },
      },
    );
    expect(next.body.data.quotes.nodes).toEqual([{ id: rows[30].id }]);
  });

  test("an unknown symbol gives an empty page, not an error", async () => {
    const { body } = await t.gql(PAGE, { variables: { symbols: ["NOPE"] } });
    expect(body.errors).toBeUndefined();
    expect(body.data.quotes).toEqual({
      edges: [],
      nodes: [],
      pageInfo: { hasNextPage: false, endCursor: null },
    });
  });

  test.each([["not-a-cursor!"], ["bm9wZQ"], [Buffer.from("1:2:3").toString("base64url")]])(
    "a malformed cursor %s is BAD_USER_INPUT",
    async (after) => {
      const { body } = await t.gql(PAGE, { variables: { after } });
      expect(body.data?.quotes ?? null).toBeNull();
      expect(body.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
      expect(body.errors?.[0].message).toMatch(/Malformed cursor/);
    },
  );

  test.each([[100000], [0], [-1]])("first: %d is refused with BAD_USER_INPUT, not clamped", async (first) => {
    const { body } = await t.gql(PAGE, { variables: { first } });
    expect(body.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
    expect(body.errors?.[0].message).toMatch(/first must be between 1 and 1000/);
  });

  test("from after to is BAD_USER_INPUT", async () => {
    const { body } = await t.gql(PAGE, {
      variables: { from: "2026-01-06T00:00:00Z", to: "2026-01-05T00:00:00Z" },
    });
    expect(body.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
  });
});

describe("instruments and latest quotes", () => {
  test("instruments filter by search and sector", async () => {
    const { body } = await t.gql(
      `{ a: instruments(search: "sf") { symbol name } b: instruments(sector: "Energy") { symbol } }`,
    );
    expect(body.data.a).toEqual([{ symbol: "MSFT", name: "MSFT Inc." }]);
    expect(body.data.b).toEqual([]);
  });

  test("instrument(symbol) with latestQuote, and null for an unknown symbol", async () => {
    const { body } = await t.gql(
      `{ instrument(symbol: "NVDA") { symbol latestQuote { seq symbol instrument { symbol } } } none: instrument(symbol: "ZZZZ") { symbol } }`,
    );
    expect(body.data.instrument).toEqual({
      symbol: "NVDA",
      latestQuote: { seq: "250", symbol: "NVDA", instrument: { symbol: "NVDA" } },
    });
    expect(body.data.none).toBeNull();
  });

  test("latestQuotes returns the newest quote of each symbol asked for, all when omitted", async () => {
    const { body } = await t.gql(
      `{ some: latestQuotes(symbols: ["AAPL", "NOPE"]) { symbol seq } all: latestQuotes { symbol seq } }`,
    );
    expect(body.data.some).toEqual([{ symbol: "AAPL", seq: "250" }]);
    expect(body.data.all.map((q: { symbol: string }) => q.symbol).sort()).toEqual(SYMBOLS);
  });

  test("me answers with the token's subject and roles", async () => {
    const token = await t.token("bob", ["USER", "STEWARD"] as never);
    const { body } = await t.gql(`{ me { id roles entitlements } }`, { token });
    expect(body.data.me).toEqual({ id: "bob", roles: ["USER", "STEWARD"], entitlements: [] });
  });
});

describe("no N+1", () => {
  async function statements(fn: () => Promise<unknown>): Promise<number> {
    const count = async () => {
      const text = await (await fetch(t.url.replace("/graphql", "/metrics"))).text();
      return Number(/^tickgraph_db_queries_total (\d+)/m.exec(text)![1]);
    };
    const before = await count();
    await fn();
    return (await count()) - before;
  }

  test("a page of 750 quotes with their instruments and latest quotes costs a constant number of statements", async () => {
    const q = `{ quotes(first: 750) { nodes { symbol instrument { name latestQuote { price instrument { symbol } } } } } }`;
    let rows = 0;
    const n = await statements(async () => {
      const { body } = await t.gql(q);
      expect(body.errors).toBeUndefined();
      rows = body.data.quotes.nodes.length;
    });
    expect(rows).toBe(750);
    // quotes page + instruments batch + latest-quote batch (+ nested instrument batch, served by the same loader)
    expect(n).toBeLessThanOrEqual(4);
  });
});
