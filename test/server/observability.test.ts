import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { log } from "../../src/log";
import { Role } from "../../src/policy/principal";
import { startTestPlatform, type TestPlatform } from "../support/server";
import { until } from "../support/wait";

// What an operator expects to watch: latency histograms, gauges named by Prometheus's rules, one
// structured log line per operation, and refused tokens at warn.
let t: TestPlatform;
let token: string;

beforeAll(async () => {
  t = await startTestPlatform(
    { INGEST: "on", LOG_LEVEL: "info" },
    { feed: { seed: 9, symbols: 4, rate: 300, speed: 60, start: "2026-01-05T14:29:00Z" } },
  );
  token = await t.token("olive", [Role.USER]);
});
afterAll(() => t.close());

const scrape = async () => (await fetch(t.url.replace("/graphql", "/metrics"))).text();

/** The value of one sample (`name{labels}`), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Prometheus's naming rules, as `promtool check metrics` applies them, checked on an exposition. */
function namingProblems(text: string): string[] {
  const problems: string[] = [];
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1], type[2]);
    const help = /^# HELP (\S+) (.+)$/.exec(line);
    if (help) helps.add(help[1]);
  }
  for (const [name, type] of types) {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) problems.push(`${name}: not snake_case`);
    if (!name.startsWith("tickgraph_")) problems.push(`${name}: not under tickgraph_`);
    if (!helps.has(name)) problems.push(`${name}: no HELP`);
    if (type === "counter" && !name.endsWith("_total")) problems.push(`${name}: a counter without _total`);
    if (type !== "counter" && name.endsWith("_total")) problems.push(`${name}: a ${type} named _total`);
    if (/_(bucket|count|sum)$/.test(name)) problems.push(`${name}: a reserved suffix`);
    if (/_(ms|milliseconds|millis)(_|$)/.test(name)) problems.push(`${name}: durations are in seconds`);
  }
  return problems;
}

describe("metrics", () => {
  test("histograms of operation latency (type, outcome), HTTP responses (status) and SQL statements", async () => {
    await t.gql(`{ quotes(first: 2) { nodes { id } } }`);
    await t.gql(`{ quotes(first: 1001) { nodes { id } } }`);
    await t.gql(`{ me { id } }`, { token: null });
    const text = await scrape();
    const count = (series: string) => sample(text, series) ?? 0;
    expect(
      count(`tickgraph_graphql_operation_duration_seconds_count{transport="http",type="query",outcome="ok"}`),
    ).toBeGreaterThan(0);
    expect(
      count(
        `tickgraph_graphql_operation_duration_seconds_count{transport="http",type="query",outcome="error"}`,
      ),
    ).toBeGreaterThan(0);
    expect(
      sample(
        text,
        `tickgraph_graphql_operation_duration_seconds_bucket{le="+Inf",transport="http",type="query",outcome="ok"}`,
      ),
    ).toBe(
      count(`tickgraph_graphql_operation_duration_seconds_count{transport="http",type="query",outcome="ok"}`),
    );
    expect(
      count(`tickgraph_http_response_duration_seconds_count{route="/graphql",status="200"}`),
    ).toBeGreaterThan(0);
    expect(
      count(`tickgraph_http_response_duration_seconds_count{route="/graphql",status="401"}`),
    ).toBeGreaterThan(0);
    expect(count(`tickgraph_db_query_duration_seconds_count`)).toBeGreaterThan(0);
  });

  test("WebSocket connections are a gauge that follows clients connecting and leaving", async () => {
    const connections = async () => sample(await scrape(), "tickgraph_websocket_connections");
    const before = (await connections())!;
    const client = t.ws();
    await new Promise<void>((resolve, reject) =>
      client.subscribe({ query: "{ me { id } }" }, { next: () => {}, error: reject, complete: resolve }),
    );
    expect(await connections()).toBe(before + 1);
    await client.dispose();
    await until("the connection to be gone", async () => (await connections()) === before);
    // Its operation was timed like HTTP's.
    const text = await scrape();
    expect(
      sample(
        text,
        `tickgraph_graphql_operation_duration_seconds_count{transport="ws",type="query",outcome="ok"}`,
      ),
    ).toBeGreaterThan(0);
  });

  test("the window engine's lag behind its watermark is reported", async () => {
    const lag = await until("a window lag", async () =>
      sample(await scrape(), "tickgraph_window_watermark_lag_seconds"),
    );
    expect(lag).toBeGreaterThanOrEqual(0);
    // The engine keeps up with a 60x market: it trails the watermark by moments, not by minutes.
    expect(lag).toBeLessThan(600);
  });

  test("names follow Prometheus's rules: no gauge named _total, every counter with it", async () => {
    const text = await scrape();
    expect(namingProblems(text)).toEqual([]);
    // The parser above catches what it should.
    expect(namingProblems("# HELP tickgraph_x_total x\n# TYPE tickgraph_x_total gauge\n")).toEqual([
      "tickgraph_x_total: a gauge named _total",
    ]);
  });

  const promtool = spawnSync("promtool", ["--version"]).status === 0;
  (promtool ? test : test.skip)(
    `promtool check metrics is clean${promtool ? "" : " (skipped: promtool not found; apt-get install prometheus)"}`,
    async () => {
      const r = spawnSync("promtool", ["check", "metrics"], { input: await scrape(), encoding: "utf8" });
      expect(r.stdout + r.stderr).toBe("");
      expect(r.status).toBe(0);
    },
  );
});

describe("logs", () => {
  test("one structured line per operation at info; a refused token at warn", async () => {
    const info = jest.spyOn(log, "info").mockImplementation(() => undefined);
    const warn = jest.spyOn(log, "warn").mockImplementation(() => undefined);
    try {
      const query = `query Latest { quotes(first: 1) { nodes { id } } }`;
      await t.gql(query, { token });
      await t.gql(`{ me { id } }`, { token: "not-a-token" });
      const lines = info.mock.calls.filter(
        ([fields, msg]) => msg === "operation" && (fields as { principal?: string }).principal === "olive",
      );
      expect(lines).toHaveLength(1);
      expect(lines[0][0]).toMatchObject({
        principal: "olive",
        operation: "QUERY",
        operationName: "Latest",
        hash: createHash("sha256").update(query).digest("hex"),
        durationMs: expect.any(Number),
        outcome: "ALLOWED",
        rows: expect.any(Number),
      });
      // The refusal is logged once its response is sent.
      const refused = await until("the refusal's line", () => {
        const calls = warn.mock.calls.filter(([, msg]) => msg === "unauthenticated request");
        return calls.length ? calls : undefined;
      });
      expect(refused).toHaveLength(1);
      expect(refused[0][0]).toMatchObject({
        principal: null,
        outcome: "DENIED",
        errorCode: "UNAUTHENTICATED",
      });
      expect(
        info.mock.calls.some(([f]) => (f as { errorCode?: string }).errorCode === "UNAUTHENTICATED"),
      ).toBe(false);
    } finally {
      info.mockRestore();
      warn.mockRestore();
    }
  });
});
