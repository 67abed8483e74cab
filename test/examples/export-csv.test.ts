import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { rebuildWindows } from "../../src/windows/rebuild";
import { parseCsv } from "../support/csv";
import { grantEntitlements } from "../support/governance";
import { seedQuotes } from "../support/seed";
import { startTestPlatform, type TestPlatform } from "../support/server";

// examples/export_csv.py (Python, standard library only) against a live server: its CSV files hold
// exactly what GraphQL returns, every page of it.
const SCRIPT = join(__dirname, "../../examples/export_csv.py");
/** The Python to run the examples with (another one, e.g. a virtualenv's, through PYTHON). */
const PYTHON = process.env.PYTHON ?? "python3";
const START = new Date("2026-01-05T14:30:00Z");
const SYMBOLS = ["AAPL", "MSFT", "NVDA"];
/** Rows per request: both exports take several pages. */
const PAGE = 30;
let t: TestPlatform;
let token: string;
let out: string;

beforeAll(async () => {
  t = await startTestPlatform({}, {}, (url) =>
    seedQuotes(url, { symbols: SYMBOLS, perSymbol: 240, start: START, stepMs: 1500 }),
  );
  // Quotes stored straight into the table: panes and windows are computed from them as after a backfill,
  // up to where a window engine would have emitted.
  const ds = t.platform.db.dataSource;
  await ds.query(
    `INSERT INTO window_progress (id, emitted_until, final_until) VALUES (1, '2026-01-06', '2026-01-06')`,
  );
  await rebuildWindows(ds, START, new Date(START.getTime() + 3_600_000));
  await grantEntitlements(t, "alice");
  token = await t.token("alice");
  out = mkdtempSync(join(tmpdir(), "tickgraph-export-"));
});
afterAll(async () => {
  rmSync(out, { recursive: true, force: true });
  await t.close();
});

/** Every node of a cursor-paged field, fetched here over GraphQL the way a client would. */
async function allNodes(field: string, query: string, variables: Record<string, unknown>) {
  const nodes: Record<string, unknown>[] = [];
  let after: string | null = null;
  for (;;) {
    const { body } = await t.gql(query, { token, variables: { ...variables, first: 1000, after } });
    expect(body.errors).toBeUndefined();
    const page = body.data[field];
    nodes.push(...page.nodes);
    if (!page.pageInfo.hasNextPage) return nodes;
    after = page.pageInfo.endCursor;
  }
}

/** A CSV row read back into GraphQL's values, by the types the API returned for that row. */
function readBack(header: string[], row: string[], like: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    header.map((k, i) => {
      const cell = row[i];
      const expected = like[k];
      if (cell === "") return [k, null];
      if (typeof expected === "number") return [k, Number(cell)];
      if (typeof expected === "boolean") return [k, cell === "true" ? true : cell === "false" ? false : cell];
      return [k, cell];
    }),
  );
}

test("the Python example pages quotes and windows into CSV files equal to the GraphQL results", async () => {
  const { stdout } = await promisify(execFile)(
    PYTHON,
    [
      SCRIPT,
      "--url",
      t.url,
      "--token",
      token,
      "--symbols",
      "AAPL,NVDA",
      "--page-size",
      String(PAGE),
      "--out-dir",
      out,
    ],
    { timeout: 60_000 },
  );
  expect(stdout).toContain("480 quotes");

  const [quoteHeader, ...quoteRows] = parseCsv(readFileSync(join(out, "quotes.csv"), "utf8"));
  const quotes = await allNodes(
    "quotes",
    `query($first: Int!, $after: String) {
      quotes(symbols: ["AAPL", "NVDA"], first: $first, after: $after, order: ASC) {
        nodes { ${quoteHeader.join(" ")} } pageInfo { hasNextPage endCursor }
      }
    }`,
    {},
  );
  expect(quotes).toHaveLength(480);
  expect(quoteRows.map((r, i) => readBack(quoteHeader, r, quotes[i] ?? {}))).toEqual(quotes);
  // Real-time with depth: bid and ask are there, not masked.
  expect(quotes.every((q) => typeof q.bid === "number" && q.delayed === false)).toBe(true);

  const [windowHeader, ...windowRows] = parseCsv(readFileSync(join(out, "windows_ONE_MINUTE.csv"), "utf8"));
  const windows = await allNodes(
    "windowAggregates",
    `query($first: Int!, $after: String) {
      windowAggregates(size: ONE_MINUTE, symbols: ["AAPL", "NVDA"], first: $first, after: $after, order: ASC) {
        nodes { ${windowHeader.join(" ")} } pageInfo { hasNextPage endCursor }
      }
    }`,
    {},
  );
  expect(windows.length).toBeGreaterThan(2 * PAGE);
  expect(windowRows.map((r, i) => readBack(windowHeader, r, windows[i] ?? {}))).toEqual(windows);
  expect(new Set(windows.map((w) => w.symbol))).toEqual(new Set(["AAPL", "NVDA"]));

  // It paged: one request per page of each, as the access log counts them.
  const requests: { name: string; n: number }[] = await t.platform.db.dataSource.query(
    `SELECT operation_name AS name, count(*)::int AS n FROM access_log
     WHERE principal = 'alice' AND operation_name LIKE 'Export%' GROUP BY 1 ORDER BY 1`,
  );
  expect(requests).toEqual([
    { name: "ExportQuotes", n: Math.ceil(480 / PAGE) },
    { name: "ExportWindows", n: Math.ceil(windows.length / PAGE) },
  ]);
});

test("the Python example fails with the server's error code on a refused request", async () => {
  const run = promisify(execFile)(PYTHON, [SCRIPT, "--url", t.url, "--token", "nope", "--out-dir", out], {
    timeout: 60_000,
  });
  await expect(run).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining("UNAUTHENTICATED") });
});

/** Runs `code` in Python with the test's values bound (as JSON); resolves with what it printed. */
async function python(code: string, values: Record<string, unknown>): Promise<string> {
  const bound = Object.entries(values)
    .map(([k, v]) => `${k} = json.loads(${JSON.stringify(JSON.stringify(v))})`)
    .join("\n");
  const { stdout } = await promisify(execFile)(PYTHON, ["-c", `import json, sys\n${bound}\n${code}`], {
    timeout: 60_000,
  });
  return stdout;
}

test("pasted into a notebook cell, it defines export_csv without reading the kernel's arguments", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tickgraph-cell-"));
  // What a Jupyter cell is: the code run as __main__, without __file__, the kernel's argv in sys.argv.
  const printed = await python(
    `sys.argv = ["/usr/lib/python3/dist-packages/ipykernel_launcher.py", "-f", "/tmp/kernel-4b1d.json"]
cell = {"__name__": "__main__"}
exec(compile(open(script).read(), "<cell>", "exec"), cell)
print(json.dumps(cell["export_csv"](url, token, symbols=["AAPL"], out_dir=out)))`,
    { script: SCRIPT, url: t.url, token, out: dir },
  );
  expect(JSON.parse(printed)).toEqual({
    [join(dir, "quotes.csv")]: 240,
    [join(dir, "windows_ONE_MINUTE.csv")]: expect.any(Number),
  });
  const [header, ...rows] = parseCsv(readFileSync(join(dir, "quotes.csv"), "utf8"));
  expect(header[1]).toBe("symbol");
  expect(new Set(rows.map((r) => r[1]))).toEqual(new Set(["AAPL"]));
  rmSync(dir, { recursive: true, force: true });
});

test("imported as a module, export_csv writes the files and returns their row counts", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tickgraph-import-"));
  const printed = await python(
    `sys.argv = ["notebook"]
sys.path.insert(0, examples)
from export_csv import export_csv
print(json.dumps(export_csv(url, token, symbols="MSFT,NVDA", size="FIVE_MINUTES", page_size=100, out_dir=out)))`,
    { examples: join(__dirname, "../../examples"), url: t.url, token, out: dir },
  );
  const written = JSON.parse(printed) as Record<string, number>;
  expect(written[join(dir, "quotes.csv")]).toBe(480);
  expect(written[join(dir, "windows_FIVE_MINUTES.csv")]).toBeGreaterThan(0);
  rmSync(dir, { recursive: true, force: true });
});
