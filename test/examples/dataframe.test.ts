import { execFile, spawnSync } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { Role } from "../../src/policy/principal";
import { grantEntitlements } from "../support/governance";
import { seedQuotes, seedWindows } from "../support/seed";
import { startTestPlatform, type TestPlatform } from "../support/server";

// examples/windows_dataframe.py loads windows into a pandas DataFrame from the CSV export: the frame
// holds what windowAggregates serves. pandas is not part of the project: without it, the test is
// skipped (its name says so).
const EXAMPLES = join(__dirname, "../../examples");
const PYTHON = process.env.PYTHON ?? "python3";
const pandas = spawnSync(PYTHON, ["-c", "import pandas"]).status === 0;
const START = new Date("2026-01-05T14:30:00Z");
const ENDS = Array.from({ length: 30 }, (_, i) => new Date(START.getTime() + 60_000 + i * 10_000));

let t: TestPlatform | undefined;
beforeAll(async () => {
  if (!pandas) return;
  t = await startTestPlatform({}, {}, async (url) => {
    await seedQuotes(url, { symbols: ["AAPL", "MSFT", "NVDA"], perSymbol: 1, start: START });
    await seedWindows(url, { symbols: ["AAPL", "MSFT", "NVDA"], ends: ENDS });
  });
  await grantEntitlements(t, "alice");
});
afterAll(() => t?.close());

const run = promisify(execFile);

(pandas ? test : test.skip)(
  `load_windows returns the windows as windowAggregates serves them${pandas ? "" : ` (skipped: pandas is not installed for ${PYTHON})`}`,
  async () => {
    const token = await t!.token("alice", [Role.USER]);
    const code = `import json, sys
sys.argv = ["/usr/lib/python3/dist-packages/ipykernel_launcher.py", "-f", "/tmp/kernel-9.json"]
cell = {"__name__": "__main__"}
exec(compile(open(${JSON.stringify(join(EXAMPLES, "windows_dataframe.py"))}).read(), "<cell>", "exec"), cell)
frame = cell["load_windows"](${JSON.stringify(t!.url)}, ${JSON.stringify(token)}, symbols=["AAPL", "MSFT"])
print(json.dumps({"dtype": str(frame["windowEnd"].dtype), "rows": json.loads(frame.to_json(orient="records", date_format="iso", date_unit="ms"))}))`;
    const { stdout } = await run(PYTHON, ["-c", code], { timeout: 60_000 });
    const { dtype, rows } = JSON.parse(stdout) as { dtype: string; rows: Record<string, unknown>[] };
    expect(dtype).toMatch(/^datetime64\[\w+, UTC\]$/); // ns before pandas 3, us since
    const columns = Object.keys(rows[0]);
    const { body } = await t!.gql(
      `{ windowAggregates(size: ONE_MINUTE, symbols: ["AAPL", "MSFT"], first: 1000, order: ASC) { nodes { ${columns.join(" ")} } } }`,
      { token },
    );
    expect(rows).toEqual(body.data.windowAggregates.nodes);
    expect(rows).toHaveLength(2 * ENDS.length);
  },
);

test("as a script without a token it says what is missing", async () => {
  const r = spawnSync(PYTHON, [join(EXAMPLES, "windows_dataframe.py")], {
    encoding: "utf8",
    env: { ...process.env, TICKGRAPH_TOKEN: "" },
  });
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(
    pandas ? /a token is required/ : /pandas is needed to load a DataFrame: pip install pandas/,
  );
});
