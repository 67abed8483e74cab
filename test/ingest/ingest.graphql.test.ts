import { startMockFeed, type MockFeed } from "../../src/feed";
import { setLogLevel } from "../../src/log";
import { Entitlement, Role } from "../../src/policy/principal";
import { grantEntitlements } from "../support/governance";
import { startTestPlatform, type TestPlatform } from "../support/server";
import { until } from "./ingest.helpers";

let feed: MockFeed;
let t: TestPlatform;
let custodian: string;

beforeAll(async () => {
  setLogLevel("silent");
  feed = await startMockFeed({ seed: 31, rate: 2000, symbols: 6, faults: "malformed=0.05,late=0.02" });
  t = await startTestPlatform({
    INGEST: "on",
    FEED_URL: feed.url,
    FEED_KEY: "tickgraph",
    FEED_SECRET: "tickgraph",
  });
  custodian = await t.token("carol", [Role.CUSTODIAN]);
  // Quarantined input holds market data: the custodian reads it as it arrives (REALTIME).
  await grantEntitlements(t, "carol", [Entitlement.REALTIME]);
  const ingest = t.platform.ingest!;
  await until("quarantined input of several reasons, enough for three pages", () => {
    const r = ingest.counts().rejected;
    const total = Object.values(r).reduce((a, b) => a + b, 0);
    return (r.LATE ?? 0) > 3 && (r.MALFORMED ?? 0) > 3 && (r.INVALID_PRICE ?? 0) > 0 && total > 20
      ? true
      : undefined;
  });
  await ingest.flush();
});
afterAll(async () => {
  await t?.close();
  await feed?.close();
});

test("ingestStatus reports the running loop", async () => {
  const { body } = await t.gql(
    `{ ingestStatus { state feedUrl connected watermark lagMs accepted rejected duplicates ratePerSecond
                      replica leaseHolder } }`,
    { token: custodian },
  );
  expect(body.errors).toBeUndefined();
  const s = body.data.ingestStatus;
  expect(s).toMatchObject({ state: "streaming", feedUrl: feed.url, connected: true });
  expect(s.accepted).toBeGreaterThan(0);
  expect(s.rejected).toBeGreaterThan(0);
  expect(Date.parse(s.watermark)).toBeLessThanOrEqual(feed.clock().getTime());
  expect(s.lagMs).toBeGreaterThanOrEqual(0);
  expect(s.ratePerSecond).toBeGreaterThan(0);
  // The only replica holds the ingest lease.
  expect(s.replica).toBe(t.config.replica);
  expect(s.leaseHolder).toBe(t.config.replica);
});

test("quarantine pages newest first by keyset, filters by reason and keeps the input verbatim", async () => {
  const all: { id: string; reason: string; raw: string; detail: string }[] = [];
  let after: string | null = null;
  for (let page = 0; page < 3; page++) {
    const { body } = await t.gql(
      `query($after: String) { quarantine(first: 4, after: $after) {
         nodes { id receivedAt reason detail raw } pageInfo { hasNextPage endCursor } } }`,
      { token: custodian, variables: { after } },
    );
    expect(body.errors).toBeUndefined();
    all.push(...body.data.quarantine.nodes);
    expect(body.data.quarantine.pageInfo.hasNextPage).toBe(true);
    after = body.data.quarantine.pageInfo.endCursor;
  }
  const ids = all.map((n) => Number(n.id));
  expect(ids).toEqual([...ids].sort((a, b) => b - a));
  expect(new Set(ids).size).toBe(12);

  const { body } = await t.gql(`{ quarantine(reason: "LATE", first: 50) { nodes { reason raw detail } } }`, {
    token: custodian,
  });
  const late = body.data.quarantine.nodes as { reason: string; raw: string; detail: string }[];
  expect(late.length).toBeGreaterThan(3);
  for (const n of late) {
    expect(n.reason).toBe("LATE");
    // Verbatim: the raw text is the feed's own serialization of one trade message.
    expect(n.raw).toMatch(
      /^\{"T":"t","S":"[A-Z.]+","i":\d+,"x":"\w","p":[\d.]+,"s":\d+,"t":"[^"]+","c":\[[^\]]*\],"z":"\w"\}$/,
    );
    expect(n.detail).toMatch(/final since watermark/);
  }
});

test("a frame that is not JSON is quarantined whole, as it arrived", async () => {
  const frames = await until("a garbage frame in the quarantine", async () => {
    const { body } = await t.gql(
      `{ quarantine(reason: "MALFORMED", first: 1000) { nodes { raw detail } } }`,
      {
        token: custodian,
      },
    );
    const found = (body.data.quarantine.nodes as { raw: string; detail: string }[]).filter(
      (n) => n.detail === "frame is not JSON",
    );
    return found.length ? found : undefined;
  });
  for (const f of frames) expect(() => JSON.parse(f.raw)).toThrow();
});

test("bad cursors and page sizes are BAD_USER_INPUT", async () => {
  for (const args of [
    `first: 0`,
    `first: 100000`,
    `after: "not-a-cursor"`,
    `after: "${Buffer.from("1:2").toString("base64url")}"`,
  ]) {
    const { body } = await t.gql(`{ quarantine(${args}) { nodes { id } } }`, { token: custodian });
    expect(body.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
  }
});

test("dataQuality counts quarantined input by reason over a time range", async () => {
  await t.platform.ingest!.flush();
  const rows: { reason: string; n: number }[] = await t.platform.db.dataSource.query(
    `SELECT reason, count(*)::int AS n FROM quarantine GROUP BY reason`,
  );
  const { body } = await t.gql(`{ dataQuality { reason count } }`, { token: custodian });
  expect(body.errors).toBeUndefined();
  const got = Object.fromEntries(
    (body.data.dataQuality as { reason: string; count: number }[]).map((q) => [q.reason, q.count]),
  );
  // Ingest keeps writing meanwhile: every reason is there, with at least what was counted before.
  for (const r of rows) expect(got[r.reason]).toBeGreaterThanOrEqual(r.n);
  const counts = body.data.dataQuality.map((q: { count: number }) => q.count);
  expect(counts).toEqual([...counts].sort((a: number, b: number) => b - a));

  const past = await t.gql(
    `{ dataQuality(from: "2000-01-01T00:00:00Z", to: "2000-01-02T00:00:00Z") { reason count } }`,
    {
      token: custodian,
    },
  );
  expect(past.body.data.dataQuality).toEqual([]);
  const inverted = await t.gql(
    `{ dataQuality(from: "2030-01-02T00:00:00Z", to: "2030-01-01T00:00:00Z") { reason } }`,
    {
      token: custodian,
    },
  );
  expect(inverted.body.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
});

test("ingest internals are CONFIDENTIAL: a USER is refused", async () => {
  const { body } = await t.gql(`{ ingestStatus { state } quarantine(first: 1) { nodes { raw } } }`);
  expect(body.data?.ingestStatus ?? null).toBeNull();
  expect(body.data?.quarantine ?? null).toBeNull();
  expect(body.errors?.map((e) => e.extensions?.code)).toContain("FORBIDDEN");
});

test("/readyz reports the ingest and /metrics carries its counters", async () => {
  const ready = (await (await fetch(t.url.replace("/graphql", "/readyz"))).json()) as {
    checks: Record<string, boolean>;
  };
  expect(ready.checks.ingest).toBe(true);
  const metrics = await (await fetch(t.url.replace("/graphql", "/metrics"))).text();
  for (const name of [
    "tickgraph_ingest_received_total",
    "tickgraph_ingest_accepted_total",
    'tickgraph_ingest_rejected_total{reason="LATE"}',
    "tickgraph_ingest_duplicates_total",
    "tickgraph_ingest_batch_commit_seconds_bucket",
    "tickgraph_ingest_batch_rows_bucket",
    "tickgraph_ingest_lag_seconds",
    "tickgraph_ingest_lease_held 1",
  ])
    expect(metrics).toContain(name);
});
