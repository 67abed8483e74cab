import { Client } from "pg";
import { Role } from "../../src/policy/principal";
import { cellOf, parseCsv } from "../support/csv";
import { grantEntitlements } from "../support/governance";
import { seedQuotes } from "../support/seed";
import { startTestPlatform, type TestPlatform } from "../support/server";
import { until } from "../support/wait";

// A million-row range exported as CSV is streamed from Postgres at the pace its client reads (the COPY
// waits on the client while it does not read), and holds, row for row, what the GraphQL pages serve.
jest.setTimeout(600_000);

const SYMBOLS = Array.from({ length: 20 }, (_, i) => `S${String(i).padStart(2, "0")}`);
const PER_SYMBOL = 50_000;
const ROWS = SYMBOLS.length * PER_SYMBOL;
const PAGE = 50_000;
const COLUMNS = [
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
  "exchange",
  "delayed",
];

let t: TestPlatform;
let pg: Client;
let token: string;

beforeAll(async () => {
  // Large pages, so that the GraphQL side of the comparison takes 20 requests rather than 1,000.
  t = await startTestPlatform(
    {
      MAX_PAGE_SIZE: String(PAGE),
      MAX_COST: "10000000",
      MAX_RESPONSE_BYTES: String(64 * 1024 * 1024),
      STATEMENT_TIMEOUT_MS: "60000",
    },
    {},
    (url) => seedQuotes(url, { symbols: SYMBOLS, perSymbol: PER_SYMBOL, stepMs: 250 }),
  );
  await grantEntitlements(t, "alice");
  token = await t.token("alice", [Role.USER]);
  pg = new Client({ connectionString: t.databaseUrl });
  await pg.connect();
});
afterAll(async () => {
  await pg.end();
  await t.close();
});

/** The lines of a streamed body, read only as they are asked for. */
function linesOf(body: ReadableStream<Uint8Array>) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered: string[] = [];
  let rest = "";
  let done = false;
  return {
    /** Reads one chunk off the wire (or nothing, at the end). */
    async pull(): Promise<boolean> {
      const r = await reader.read();
      if (r.done) {
        done = true;
        if (rest) buffered.push(rest);
        rest = "";
        return false;
      }
      const parts = (rest + decoder.decode(r.value, { stream: true })).split("\n");
      rest = parts.pop()!;
      buffered = buffered.concat(parts);
      return true;
    },
    async next(): Promise<string | null> {
      while (!buffered.length && !done) await this.pull();
      return buffered.shift() ?? null;
    },
  };
}

/** The COPY of the export running now, as Postgres reports it. */
const exportBackend = async () =>
  (
    await pg.query<{ state: string; wait_event: string | null }>(
      `SELECT state, wait_event FROM pg_stat_activity
       WHERE application_name = 'tickgraph-export' AND query LIKE 'COPY%' AND state = 'active'`,
    )
  ).rows[0];

test("a million quotes export as the GraphQL pages serve them, streamed at the reader's pace", async () => {
  const res = await fetch(`${t.url.replace(/\/graphql$/, "")}/export/quotes.csv?order=ASC`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(200);
  expect(res.headers.get("x-tickgraph-rows")).toBe(String(ROWS));
  const lines = linesOf(res.body!);
  expect(parseCsv((await lines.next())!)[0]).toEqual(COLUMNS);

  // The client reads nothing more for now: the COPY waits on it (ClientWrite) instead of the server
  // buffering the range in memory.
  const waiting = await until("the export's COPY waiting on its client", async () => {
    const b = await exportBackend();
    return b?.wait_event === "ClientWrite" ? b : undefined;
  });
  expect(waiting.state).toBe("active");

  let after: string | null = null;
  let compared = 0;
  const mismatches: string[] = [];
  for (;;) {
    const { body } = await t.gql(
      `query($after: String) { quotes(first: ${PAGE}, after: $after, order: ASC) {
        nodes { ${COLUMNS.join(" ")} } pageInfo { hasNextPage endCursor } } }`,
      { token, variables: { after } },
    );
    expect(body.errors).toBeUndefined();
    const { nodes, pageInfo } = body.data.quotes;
    for (const node of nodes as Record<string, unknown>[]) {
      const line = await lines.next();
      const expected = COLUMNS.map((c) => cellOf(node[c]));
      // Compared cell by cell; reported in bulk (a million expect() calls would be the test's cost).
      const cells = line === null ? null : parseCsv(line)[0];
      if (!cells || cells.some((cell, i) => cell !== expected[i]) || cells.length !== expected.length) {
        if (mismatches.length < 5) mismatches.push(`row ${compared + 1}: ${line} ≠ ${expected.join(",")}`);
      }
      compared++;
    }
    if (!pageInfo.hasNextPage) break;
    after = pageInfo.endCursor;
  }
  expect(mismatches).toEqual([]);
  expect(compared).toBe(ROWS);
  expect(await lines.next()).toBeNull(); // nothing after the last row

  const [entry] = (
    await pg.query(
      `SELECT decision, row_count, operation_name FROM access_log
       WHERE principal = 'alice' AND operation_name = 'export quotes.csv'`,
    )
  ).rows;
  expect(entry).toEqual({ decision: "ALLOWED", row_count: ROWS, operation_name: "export quotes.csv" });
  // The export's connection went back to its pool once the COPY was done.
  await until("the export's COPY to end", async () => (await exportBackend()) === undefined);
});
