import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { Role } from "../../src/policy/principal";
import { until } from "../support/wait";
import { startTestPlatform, TEST_SECRET, type TestPlatform } from "../support/server";

// What examples/README.md and the README tell users to run, run as written against a live server on the
// embedded mock market (where the demo principals hold their entitlements): the Node subscriber, and
// every curl command with the real curl binary, only the URL and the tokens put in.
const ROOT = join(__dirname, "../..");
const SUBSCRIBER = join(ROOT, "examples/subscribe-top-price.mjs");
let t: TestPlatform;
let alice: string;
let sam: string;

beforeAll(async () => {
  t = await startTestPlatform(
    { INGEST: "on" },
    { feed: { seed: 5, symbols: 20, rate: 600, speed: 60, start: "2026-01-05T14:29:00Z" } },
  );
  alice = await t.token("alice", [Role.USER]);
  sam = await t.token("sam", [Role.STEWARD]);
  // Windows of every size, rankings and movers to show.
  await until(
    "a 5-minute tumbling window",
    async () => {
      const { body } = await t.gql(`{ topPriceStocks { windowEnd } }`, { token: alice });
      return body.data?.topPriceStocks?.length ? true : undefined;
    },
    60_000,
  );
}, 90_000);
afterAll(() => t.close());

/** The ```sh blocks of a markdown file. */
function shellBlocks(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
}

/** Runs shell text with bash, the server's URL in place of localhost:4000. */
async function sh(script: string, env: Record<string, string>): Promise<string> {
  const { stdout } = await promisify(execFile)(
    "bash",
    ["-c", script.replaceAll("http://localhost:4000/graphql", t.url)],
    { env: { ...process.env, ...env }, cwd: ROOT, timeout: 60_000 },
  );
  return stdout;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Body = { data?: any; errors?: { message: string; extensions?: Record<string, unknown> }[] };

test("every curl command of examples/README.md answers as the README says", async () => {
  const blocks = shellBlocks("examples/README.md");
  const define = blocks.find((b) => b.startsWith("gql() {"));
  expect(define).toBeDefined();
  const calls = blocks.flatMap((b) => b.split("\n").filter((l) => l.startsWith("gql ")));
  expect(calls).toHaveLength(8);
  const answers = new Map<string, Body>();
  for (const call of calls) {
    const out = await sh(`${define}\n${call}`, { TOKEN: alice, STEWARD: sam });
    answers.set(call, JSON.parse(out) as Body);
  }
  const answer = (fragment: string) => {
    const call = calls.find((c) => c.includes(fragment));
    expect([fragment, call === undefined]).toEqual([fragment, false]);
    return answers.get(call!)!;
  };

  const quotes = answer("quotes(symbols").data.quotes;
  expect(quotes.nodes).toHaveLength(3);
  for (const q of quotes.nodes)
    expect(q).toMatchObject({ symbol: "AAPL", delayed: false, bid: expect.any(Number) });
  expect(quotes.pageInfo).toEqual({ hasNextPage: true, endCursor: expect.any(String) });
  expect(
    answer("latestQuotes")
      .data.latestQuotes.map((q: { symbol: string }) => q.symbol)
      .sort(),
  ).toEqual(["AAPL", "MSFT"]);
  const windows = answer("windowAggregates").data.windowAggregates;
  expect(windows.nodes).toHaveLength(2);
  expect(windows.nodes.every((w: { symbol: string }) => w.symbol === "AAPL")).toBe(true);
  const top = answer("topSymbols").data.topSymbols;
  expect(top.entries.map((e: { rank: number }) => e.rank)).toEqual([1, 2, 3]);
  expect(top.delayed).toBe(false);
  const movers = answer("topMovers").data.topMovers;
  expect(movers).toEqual({
    asOf: expect.any(String),
    gainers: expect.any(Array),
    losers: expect.any(Array),
    delayed: false,
  });
  expect(movers.gainers.length + movers.losers.length).toBeGreaterThan(0);
  expect(answer("me {").data).toEqual({
    me: { id: "alice", roles: ["USER"], entitlements: ["DEPTH", "REALTIME"] },
  });
  const audit = answer('"$STEWARD"');
  expect(audit.errors).toBeUndefined();
  expect(audit.data.verifyAccessLog.ok).toBe(true);
  expect(audit.data.accessLog.nodes.every((n: { decision: string }) => n.decision === "DENIED")).toBe(true);
  const refused = answer("accessLog(first: 1)");
  expect(refused.data).toEqual({ accessLog: null });
  expect(refused.errors?.[0].extensions).toMatchObject({ code: "FORBIDDEN", coordinate: "Query.accessLog" });
  expect(refused.errors?.[0].message).toMatch(/^Not allowed to read Query.accessLog: it is RESTRICTED, /);
  // Only that one was refused.
  for (const [call, body] of answers)
    if (call !== calls.find((c) => c.includes("accessLog(first: 1)")))
      expect([call, body.errors]).toEqual([call, undefined]);
}, 90_000);

test("the README's first query, token minted with npx tickgraph token, answers", async () => {
  const block = shellBlocks("README.md").find((b) => b.includes("npx tickgraph token") && b.includes("curl"));
  expect(block).toBeDefined();
  const body = JSON.parse(await sh(block!, { JWT_SECRET: TEST_SECRET })) as Body;
  expect(body.errors).toBeUndefined();
  expect(body.data.quotes.nodes).toHaveLength(5);
  expect(body.data.quotes.nodes[0]).toEqual({
    symbol: "AAPL",
    eventTime: expect.any(String),
    price: expect.any(Number),
    size: expect.any(Number),
  });
}, 90_000);

test("examples/subscribe-top-price.mjs prints each 5-minute window's top price stocks as they are published", async () => {
  const proc = spawn(process.execPath, [SUBSCRIBER], {
    cwd: ROOT,
    env: { ...process.env, TICKGRAPH_WS: t.wsUrl, TICKGRAPH_TOKEN: alice, TOP_LIMIT: "2", TOP_BY: "VWAP" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  proc.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  const lines: string[] = [];
  createInterface({ input: proc.stdout }).on("line", (l) => lines.push(l));
  try {
    await until("two windows printed", () => (lines.length >= 2 ? true : undefined), 60_000);
  } finally {
    proc.kill("SIGINT");
  }
  expect(await exited).toBe(0);
  expect(stderr).toBe("");
  for (const line of lines) {
    const m = /^(\S+) – (\S+) {2}1\. (\S+) (\d+\.\d\d) {2}2\. (\S+) (\d+\.\d\d)$/.exec(line);
    expect([line, m !== null]).toEqual([line, true]);
    const [, start, end, first, v1, second, v2] = m!;
    expect(Date.parse(end) - Date.parse(start)).toBe(300_000);
    expect(Date.parse(end) % 300_000).toBe(0);
    // The same as the query answers for that window.
    const { body } = await t.gql(
      `query($from: DateTime!, $to: DateTime!) { topPriceStocks(from: $from, to: $to, limit: 2, by: VWAP) { entries { symbol value } } }`,
      { token: alice, variables: { from: end, to: new Date(Date.parse(end) + 1).toISOString() } },
    );
    const [ranking] = body.data.topPriceStocks;
    expect(
      ranking.entries.map((e: { symbol: string; value: number }) => [e.symbol, e.value.toFixed(2)]),
    ).toEqual([
      [first, v1],
      [second, v2],
    ]);
  }
}, 90_000);

test("the subscriber exits 1 with the close reason on a refused token, 2 without one", async () => {
  const run = (token: string | undefined) =>
    promisify(execFile)(process.execPath, [SUBSCRIBER], {
      cwd: ROOT,
      env: { ...process.env, TICKGRAPH_WS: t.wsUrl, TICKGRAPH_TOKEN: token ?? "" },
      timeout: 30_000,
    });
  await expect(run("not-a-token")).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/4403/) });
  await expect(run(undefined)).rejects.toMatchObject({
    code: 2,
    stderr: expect.stringMatching(/Set TICKGRAPH_TOKEN/),
  });
});
