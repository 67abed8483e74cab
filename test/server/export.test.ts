import { Client } from "pg";
import { Entitlement, Role } from "../../src/policy/principal";
import { asCsvRecord, csvRecords } from "../support/csv";
import { grantEntitlements } from "../support/governance";
import { seedQuotes, seedWindows } from "../support/seed";
import { startTestPlatform, type TestPlatform } from "../support/server";
import { until } from "../support/wait";

// The CSV and NDJSON exports serve what the GraphQL pages serve, governed the same way: classification
// of every column, the delay without REALTIME, masking without DEPTH, one access-log entry per export.
const START = new Date("2026-01-05T14:30:00Z");
const SYMBOLS = ["AAPL", "MSFT"];
const PER_SYMBOL = 300;
const DELAY_SECONDS = 120;
/** The market has come 300 s past START: without REALTIME, quotes stop at START + 180 s. */
const MARKET_NOW = new Date(START.getTime() + 300_000);
const ENDS = Array.from({ length: 40 }, (_, i) => new Date(START.getTime() + 60_000 + i * 10_000));

let t: TestPlatform;
let pg: Client;
let alice: string; // USER with REALTIME and DEPTH
let bob: string; // USER without entitlements
let carol: string; // CUSTODIAN with both
let sam: string; // STEWARD

beforeAll(async () => {
  t = await startTestPlatform({ DELAY_SECONDS: String(DELAY_SECONDS) }, {}, async (url) => {
    await seedQuotes(url, { symbols: SYMBOLS, perSymbol: PER_SYMBOL, start: START, marketNow: MARKET_NOW });
    const c = new Client({ connectionString: url });
    await c.connect();
    // What a CSV writer must quote, a null, and microseconds (exported truncated to ms, as GraphQL does).
    await c.query(
      `INSERT INTO quotes (symbol, event_time, seq, price, size, bid, bid_size, ask, ask_size, exchange)
       VALUES ('AAPL', $1::timestamptz + interval '123456 microseconds', 100000, 101.5, 7, NULL, NULL, 101.75, 4, 'N,"Y"'),
              ('MSFT', $1::timestamptz + interval '999999 microseconds', 100000, 55.25, 3, 55.2, 1, 55.3, 2, NULL)`,
      [new Date(START.getTime() + 10_000)],
    );
    await c.end();
    await seedWindows(url, { symbols: SYMBOLS, ends: ENDS, marketNow: MARKET_NOW });
  });
  await grantEntitlements(t, "alice");
  await grantEntitlements(t, "carol");
  alice = await t.token("alice", [Role.USER]);
  bob = await t.token("bob", [Role.USER]);
  carol = await t.token("carol", [Role.CUSTODIAN]);
  sam = await t.token("sam", [Role.STEWARD]);
  pg = new Client({ connectionString: t.databaseUrl });
  await pg.connect();
});
afterAll(async () => {
  await pg.end();
  await t.close();
});

const base = () => t.url.replace(/\/graphql$/, "");

async function download(path: string, token: string | null, init: RequestInit = {}) {
  const res = await fetch(base() + path, {
    ...init,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  return { res, text: await res.text() };
}

/** Every node of a cursor-paged query, oldest first. */
async function pages(
  token: string,
  field: string,
  args: string,
  columns: string[],
): Promise<Record<string, unknown>[]> {
  const nodes: Record<string, unknown>[] = [];
  let after: string | null = null;
  for (;;) {
    const { body } = await t.gql(
      `query($after: String) { ${field}(${args}, first: 1000, after: $after, order: ASC) {
        nodes { ${columns.join(" ")} } pageInfo { hasNextPage endCursor } } }`,
      { token, variables: { after } },
    );
    expect(body.errors).toBeUndefined();
    nodes.push(...body.data[field].nodes);
    if (!body.data[field].pageInfo.hasNextPage) return nodes;
    after = body.data[field].pageInfo.endCursor;
  }
}

interface Entry {
  principal: string;
  operation: string;
  operation_name: string;
  decision: string;
  error_code: string | null;
  row_count: number | null;
  allowed: string[];
  masked: string[];
  denied: string[];
  symbols: string[];
  delayed: boolean;
}

/** The access-log entries of `principal`'s exports, oldest first. */
const exportEntries = async (principal: string): Promise<Entry[]> =>
  (
    await pg.query(
      `SELECT * FROM access_log WHERE principal = $1 AND operation_name LIKE 'export %' ORDER BY seq`,
      [principal],
    )
  ).rows;

/** Waits for `n` export entries of `principal` after `before` of them, and returns the new ones. */
async function newEntries(principal: string, before: number, n = 1): Promise<Entry[]> {
  const rows = await until(`${n} export entries of ${principal}`, async () => {
    const all = await exportEntries(principal);
    return all.length >= before + n ? all : undefined;
  });
  expect(rows).toHaveLength(before + n);
  return rows.slice(before);
}

const QUOTE_COLUMNS = [
  "id",
  "symbol",
  "eventTime",
  "seq",
  "price",
  "size",
  "bid",
  "bidSize",
  "ask",
  "askSize",
];
const ALL_QUOTE_COLUMNS = [...QUOTE_COLUMNS, "exchange", "delayed"];

test("a USER with REALTIME and DEPTH exports quotes as the pages serve them, without CONFIDENTIAL columns", async () => {
  const before = (await exportEntries("alice")).length;
  const { res, text } = await download("/export/quotes.csv?symbols=AAPL,MSFT", alice);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
  // source and receivedAt are CONFIDENTIAL: left out, and the response says so.
  expect(res.headers.get("x-tickgraph-omitted-columns")).toBe("source,receivedAt");
  expect(res.headers.get("x-tickgraph-masked-columns")).toBeNull();
  expect(res.headers.get("x-tickgraph-delayed-until")).toBeNull();
  const { header, rows } = csvRecords(text);
  expect(header).toEqual(ALL_QUOTE_COLUMNS);
  const nodes = await pages(alice, "quotes", `symbols: ["AAPL", "MSFT"]`, header);
  expect(nodes).toHaveLength(2 * PER_SYMBOL + 2);
  expect(rows).toEqual(nodes.map((n) => asCsvRecord(n, header)));
  expect(res.headers.get("x-tickgraph-rows")).toBe(String(nodes.length));
  // The quoted cell and the microseconds came through as GraphQL writes them.
  expect(rows.find((r) => r.seq === "100000" && r.symbol === "AAPL")).toMatchObject({
    exchange: 'N,"Y"',
    bid: "",
    eventTime: "2026-01-05T14:30:10.123Z",
  });
  expect(rows.find((r) => r.seq === "100000" && r.symbol === "MSFT")?.eventTime).toBe(
    "2026-01-05T14:30:10.999Z",
  );

  const [entry] = await newEntries("alice", before);
  expect(entry).toMatchObject({
    operation: "QUERY",
    operation_name: "export quotes.csv",
    decision: "ALLOWED",
    error_code: null,
    row_count: nodes.length,
    masked: [],
    denied: [],
    symbols: ["AAPL", "MSFT"],
    delayed: false,
  });
  expect(entry.allowed).toEqual(
    expect.arrayContaining(["Query.quotes", "QuoteConnection.nodes", "Quote.bid", "Quote.eventTime"]),
  );
  expect(entry.allowed).not.toContain("Quote.source");
});

test("without REALTIME and DEPTH: delayed on the market clock, bid/ask empty, and the headers say so", async () => {
  const before = (await exportEntries("bob")).length;
  const { res, text } = await download("/export/quotes.csv", bob);
  expect(res.status).toBe(200);
  expect(res.headers.get("x-tickgraph-masked-columns")).toBe("bid,bidSize,ask,askSize");
  const cutoff = new Date(MARKET_NOW.getTime() - DELAY_SECONDS * 1000);
  expect(new Date(res.headers.get("x-tickgraph-delayed-until")!).getTime()).toBeLessThanOrEqual(
    cutoff.getTime(),
  );
  const { header, rows } = csvRecords(text);
  const nodes = await pages(bob, "quotes", `symbols: null`, header);
  // The same cutoff as the queries: rows up to START + 180 s (the last of them, and none after).
  expect(nodes.length).toBeGreaterThan(300);
  expect(nodes.length).toBeLessThan(2 * PER_SYMBOL);
  expect(rows).toEqual(nodes.map((n) => asCsvRecord(n, header)));
  expect(rows.every((r) => r.bid === "" && r.ask === "" && r.delayed === "true")).toBe(true);
  expect(rows.every((r) => new Date(r.eventTime) <= cutoff)).toBe(true);

  const [entry] = await newEntries("bob", before);
  expect(entry).toMatchObject({
    decision: "PARTIAL",
    masked: ["Quote.ask", "Quote.askSize", "Quote.bid", "Quote.bidSize"],
    delayed: true,
    row_count: rows.length,
  });
});

test("asking for a column above the caller's classification is FORBIDDEN, logged as DENIED", async () => {
  const before = (await exportEntries("bob")).length;
  const { res, text } = await download("/export/quotes.csv?columns=symbol,price,source,receivedAt", bob);
  expect(res.status).toBe(403);
  const body = JSON.parse(text);
  expect(body.errors[0].extensions.code).toBe("FORBIDDEN");
  expect(body.errors[0].message).toMatch(/Quote\.source, Quote\.receivedAt/);
  const [entry] = await newEntries("bob", before);
  expect(entry).toMatchObject({
    decision: "DENIED",
    error_code: "FORBIDDEN",
    denied: ["Quote.receivedAt", "Quote.source"],
  });
});

test("a custodian's export holds the CONFIDENTIAL lineage columns too", async () => {
  const { res, text } = await download("/export/quotes.csv?symbols=MSFT&columns=id,source,receivedAt", carol);
  expect(res.status).toBe(200);
  expect(res.headers.get("x-tickgraph-omitted-columns")).toBeNull();
  const { header, rows } = csvRecords(text);
  expect(header).toEqual(["id", "source", "receivedAt"]);
  const nodes = await pages(carol, "quotes", `symbols: ["MSFT"]`, header);
  expect(rows).toEqual(nodes.map((n) => asCsvRecord(n, header)));
  expect(rows[0].source).toBe("feed");
});

test("window aggregates as NDJSON equal the GraphQL nodes, value for value", async () => {
  const columns = [
    "symbol",
    "size",
    "windowStart",
    "windowEnd",
    "open",
    "high",
    "low",
    "close",
    "mean",
    "vwap",
    "volume",
    "tickCount",
    "revision",
    "final",
    "delayed",
  ];
  const { res, text } = await download(
    "/export/window-aggregates.ndjson?size=ONE_MINUTE&symbols=AAPL&symbols=MSFT",
    alice,
  );
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/x-ndjson; charset=utf-8");
  const lines = text.split("\n");
  expect(lines.pop()).toBe("");
  const nodes = await pages(
    alice,
    "windowAggregates",
    `size: ONE_MINUTE, symbols: ["AAPL", "MSFT"]`,
    columns,
  );
  expect(nodes).toHaveLength(2 * ENDS.length);
  expect(lines.map((l) => JSON.parse(l))).toEqual(nodes);
});

test("windows are delayed without REALTIME, by the same cutoff as windowAggregates", async () => {
  const { res, text } = await download("/export/window-aggregates.csv?size=ONE_MINUTE&order=DESC", bob);
  expect(res.status).toBe(200);
  const { header, rows } = csvRecords(text);
  const { body } = await t.gql(
    `{ windowAggregates(size: ONE_MINUTE, first: 1000) { nodes { ${header.join(" ")} } } }`,
    { token: bob },
  );
  expect(rows).toEqual(
    body.data.windowAggregates.nodes.map((n: Record<string, unknown>) => asCsvRecord(n, header)),
  );
  expect(rows.length).toBeGreaterThan(0);
  expect(rows.length).toBeLessThan(2 * ENDS.length);
  expect(rows.every((r) => r.delayed === "true")).toBe(true);
});

test("the access log is for stewards: a USER is FORBIDDEN, a steward gets what accessLog pages serve", async () => {
  const denied = await download("/export/access-log.csv", alice);
  expect(denied.res.status).toBe(403);
  expect(JSON.parse(denied.text).errors[0]).toMatchObject({
    extensions: { code: "FORBIDDEN", coordinate: "Query.accessLog" },
  });

  const columns = [
    "id",
    "seq",
    "principal",
    "roles",
    "operation",
    "operationName",
    "decision",
    "masked",
    "rowCount",
    "hash",
  ];
  const { res, text } = await download(
    `/export/access-log.csv?principal=alice&columns=${columns.join(",")}`,
    sam,
  );
  expect(res.status).toBe(200);
  const { header, rows } = csvRecords(text);
  expect(header).toEqual(columns);
  const { body } = await t.gql(
    `{ accessLog(filter: { principal: "alice" }, first: 1000) { nodes { ${columns.join(" ")} } } }`,
    { token: sam },
  );
  // The export is oldest first; accessLog pages newest first. The export's own entry comes after its snapshot.
  const nodes = body.data.accessLog.nodes.reverse().slice(0, rows.length);
  expect(rows.length).toBeGreaterThan(3);
  expect(rows).toEqual(nodes.map((n: Record<string, unknown>) => asCsvRecord(n, header)));
  expect(JSON.parse(rows.find((r) => r.operationName === "export access-log.csv")!.roles)).toEqual(["USER"]);
});

test("a steward's reclassification applies to the next export at once", async () => {
  const classify = (level: string) =>
    t.gql(`mutation { classifyField(coordinate: "Quote.exchange", level: ${level}) { level } }`, {
      token: sam,
    });
  expect((await classify("RESTRICTED")).body.errors).toBeUndefined();
  try {
    const { res, text } = await download("/export/quotes.csv?symbols=AAPL", alice);
    expect(res.headers.get("x-tickgraph-omitted-columns")).toBe("exchange,source,receivedAt");
    expect(csvRecords(text).header).not.toContain("exchange");
    expect((await download("/export/quotes.csv?columns=exchange", alice)).res.status).toBe(403);
  } finally {
    await classify("PUBLIC");
  }
});

test.each([
  [
    "an unknown parameter",
    "/export/quotes.csv?symbol=AAPL",
    400,
    "BAD_USER_INPUT",
    /Unknown parameter "symbol"/,
  ],
  ["an unknown column", "/export/quotes.csv?columns=price,colour", 400, "BAD_USER_INPUT", /colour/],
  ["a malformed instant", "/export/quotes.csv?from=yesterday", 400, "BAD_USER_INPUT", /ISO-8601/],
  [
    "from after to",
    "/export/quotes.csv?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    400,
    "BAD_USER_INPUT",
    /from must not be after to/,
  ],
  ["windows without a size", "/export/window-aggregates.csv", 400, "BAD_USER_INPUT", /size is required/],
  [
    "an unknown size",
    "/export/window-aggregates.csv?size=HOUR",
    400,
    "BAD_USER_INPUT",
    /size must be one of/,
  ],
  [
    "a repeated single parameter",
    "/export/quotes.csv?order=ASC&order=DESC",
    400,
    "BAD_USER_INPUT",
    /Give order once/,
  ],
  ["an unknown export", "/export/trades.csv", 404, "BAD_REQUEST", /No export named trades\.csv/],
])(
  "%s is a client error, answered as GraphQL JSON and logged once",
  async (what, path, status, code, message) => {
    const who = `export-${what.replace(/\W+/g, "-")}`;
    const token = await t.token(who, [Role.USER]);
    const { res, text } = await download(path, token);
    expect(res.status).toBe(status);
    const body = JSON.parse(text);
    expect(body.errors[0].extensions.code).toBe(code);
    expect(body.errors[0].message).toMatch(message);
    const rows = await until(`${who}'s entry`, async () => {
      const r = (await pg.query(`SELECT * FROM access_log WHERE principal = $1`, [who])).rows;
      return r.length ? r : undefined;
    });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      decision: "DENIED",
      error_code: status === 404 ? "HTTP_404" : code,
      row_count: null,
      // Refused before anything was decided.
      allowed: [],
    });
  },
);

test("no token: 401 UNAUTHENTICATED; another method than GET: 405", async () => {
  const anonymous = await download("/export/quotes.csv", null);
  expect(anonymous.res.status).toBe(401);
  expect(JSON.parse(anonymous.text).errors[0].extensions.code).toBe("UNAUTHENTICATED");
  const post = await download("/export/quotes.csv", alice, { method: "POST" });
  expect(post.res.status).toBe(405);
  expect(post.res.headers.get("allow")).toBe("GET");
  // HEAD too: it would count and log an export that is never sent.
  expect((await download("/export/quotes.csv", alice, { method: "HEAD" })).res.status).toBe(405);
});

test("DEPTH granted later unmasks the next export", async () => {
  await grantEntitlements(t, "dora", [Entitlement.DEPTH]);
  const dora = await t.token("dora", [Role.USER]);
  const { res, text } = await download("/export/quotes.csv?symbols=MSFT&columns=bid,ask,delayed", dora);
  expect(res.headers.get("x-tickgraph-masked-columns")).toBeNull();
  const { rows } = csvRecords(text);
  expect(rows.length).toBeGreaterThan(0);
  expect(rows.every((r) => r.bid !== "" && r.delayed === "true")).toBe(true);
});

test("fail closed: when its access-log entry cannot be written, no row leaves", async () => {
  await pg.query("ALTER TABLE access_log RENAME TO access_log_away");
  let withheld: Awaited<ReturnType<typeof download>>;
  try {
    withheld = await download("/export/quotes.csv?symbols=AAPL", alice);
  } finally {
    await pg.query("ALTER TABLE access_log_away RENAME TO access_log");
  }
  expect(withheld.res.status).toBe(503);
  expect(JSON.parse(withheld.text).errors[0].extensions.code).toBe("AUDIT_UNAVAILABLE");
  expect(withheld.text).not.toMatch(/AAPL/);
  // Its snapshot was let go: the next export runs.
  const again = await download("/export/quotes.csv?symbols=AAPL&columns=symbol", alice);
  expect(again.res.status).toBe(200);
  expect(csvRecords(again.text).rows.length).toBe(PER_SYMBOL + 1);
});
