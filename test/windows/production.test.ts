import { until } from "../support/wait";
import { grantEntitlements } from "../support/governance";
import { startTestPlatform, type TestPlatform } from "../support/server";
import { record, type Recording } from "../support/subscriptions";
import { ORACLE } from "../support/windows-oracle";

// The values as `serve` computes them: the embedded mock feed with faults (malformed, repeated,
// out-of-order and late trades, connections dropped every few seconds), ingest writing by COPY over two
// connections and backfilling over REST after each reconnect, panes summed in JavaScript, the window
// engine. Every final window of every size, as GraphQL pages it and as the windowAggregates subscription
// last sent it, must equal the SQL oracle over the raw quotes; every final one-minute ranking too.
let t: TestPlatform;
const START = Date.parse("2026-01-05T14:29:00Z");
// At 60 simulated seconds per wall second, a trade the feed holds back until its symbol's next trade
// (tens of ms for the quieter symbols) arrives seconds of market time late: after its window opened,
// within the 30 s of allowed lateness, so the window is revised. The `late` fault's trades (60–120 s
// back) are quarantined as LATE.
const FAULTS = "malformed=0.01,duplicate=0.02,outoforder=0.06,late=0.003,disconnect=3s";
const SIZES = ["ONE_MINUTE", "FIVE_MINUTES", "FIFTEEN_MINUTES"] as const;
const FIELDS =
  "symbol size windowStart windowEnd open high low close mean vwap volume tickCount revision final";

interface Window {
  symbol: string;
  size: string;
  windowStart: string;
  windowEnd: string;
  open: number;
  high: number;
  low: number;
  close: number;
  mean: number;
  vwap: number | null;
  volume: number;
  tickCount: number;
  revision: number;
  final: boolean;
}
interface Oracle {
  size: string;
  windowEnd: Date;
  symbol: string;
  n: number;
  volume: number;
  mean: number;
  vwap: number | null;
  high: number;
  low: number;
  open: number;
  close: number;
}
type Ranking = { windowEnd: string; entries: { rank: number; symbol: string; value: number }[] };

let token: string;
const live: Record<string, Recording<{ windowAggregates: Window }>> = {};
let rankings: Recording<{ topSymbols: Ranking }>;

beforeAll(async () => {
  t = await startTestPlatform(
    { INGEST: "on" },
    {
      feed: {
        seed: 47,
        symbols: 8,
        rate: 400,
        speed: 60,
        start: new Date(START).toISOString(),
        faults: FAULTS,
      },
    },
  );
  await grantEntitlements(t, "vera");
  token = await t.token("vera");
  const ws = t.ws({ connectionParams: { authorization: `Bearer ${token}` } });
  for (const size of SIZES)
    live[size] = record(ws, `subscription($s: WindowSize!) { windowAggregates(size: $s) { ${FIELDS} } }`, {
      s: size,
    });
  rankings = record(
    ws,
    `subscription { topSymbols(size: ONE_MINUTE, limit: 3) { windowEnd entries { rank symbol value } } }`,
  );
});
afterAll(() => t.close());

const keyOf = (size: string, end: string | Date, symbol: string) =>
  `${size}|${typeof end === "string" ? end : end.toISOString()}|${symbol}`;
const near = (a: number | null, b: number | null) =>
  a === b || (a !== null && b !== null && Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b)));

/** The values a window must have, as the oracle computed them; mean and vwap to 1e-9 relative. */
function expectEqualsOracle(w: Window, o: Oracle | undefined, where: string): void {
  expect([where, o === undefined]).toEqual([where, false]);
  const got = { n: w.tickCount, volume: w.volume, high: w.high, low: w.low, open: w.open, close: w.close };
  const want = { n: o!.n, volume: o!.volume, high: o!.high, low: o!.low, open: o!.open, close: o!.close };
  expect([where, got]).toEqual([where, want]);
  if (!near(w.mean, o!.mean) || !near(w.vwap, o!.vwap))
    throw new Error(`${where}: mean ${w.mean} vs ${o!.mean}, vwap ${w.vwap} vs ${o!.vwap}`);
}

async function sql<T>(text: string, params: unknown[] = []): Promise<T[]> {
  return t.platform.db.dataSource.query(text, params);
}

/** Set by the first test: the windows final by then, the oracle's values for them, GraphQL's. */
let final: Date;
let oracle: Oracle[];
const want = new Map<string, Oracle>();
const stored = new Map<string, Window>();

test("every final window of every size, paged over GraphQL to the end, equals the oracle", async () => {
  const finalAt = START + 17 * 60_000; // past the first full 15-minute windows and their lateness
  await until(
    "17 market minutes final, reconnects with backfill and revised windows",
    async () => {
      const ingest = t.platform.ingest!;
      const [{ final, revised }] = await sql<{ final: Date | null; revised: number }>(
        `SELECT (SELECT final_until FROM window_progress) AS final,
                (SELECT count(*)::int FROM window_aggregates
                 WHERE revision > 0 AND window_end <= (SELECT final_until FROM window_progress)) AS revised`,
      );
      return (final?.getTime() ?? 0) >= finalAt &&
        t.platform.feed!.stats().disconnects >= 2 &&
        ingest.counts().received.backfill > 0 &&
        revised > 0
        ? true
        : undefined;
    },
    120_000,
  );
  // Final windows never change again: whatever ingest does from here on, these are settled.
  [{ final }] = await sql<{ final: Date }>(`SELECT final_until AS final FROM window_progress`);
  oracle = await sql<Oracle>(`SELECT * FROM (${ORACLE}) o WHERE "windowEnd" <= $1`, [final]);
  for (const o of oracle) want.set(keyOf(o.size, o.windowEnd, o.symbol), o);

  // The production path was taken: trades streamed (COPY) and backfilled (INSERT), faults quarantined.
  const sources = await sql<{ source: string; n: number }>(
    `SELECT source, count(*)::int AS n FROM quotes GROUP BY source ORDER BY source`,
  );
  expect(sources.map((s) => s.source)).toEqual(["backfill", "feed"]);
  const reasons = (await sql<{ reason: string }>(`SELECT DISTINCT reason FROM quarantine`)).map(
    (r) => r.reason,
  );
  expect(reasons).toEqual(expect.arrayContaining(["MALFORMED", "LATE"]));

  // GraphQL, every page to the end, all three sizes.
  for (const size of SIZES) {
    let after: string | null = null;
    for (;;) {
      const { body } = await t.gql(
        `query($s: WindowSize!, $to: DateTime!, $after: String) {
          windowAggregates(size: $s, to: $to, order: ASC, first: 1000, after: $after) {
            nodes { ${FIELDS} } pageInfo { hasNextPage endCursor } } }`,
        { token, variables: { s: size, to: new Date(final.getTime() + 1).toISOString(), after } },
      );
      expect(body.errors).toBeUndefined();
      for (const w of body.data.windowAggregates.nodes as Window[]) {
        expect(w.final).toBe(true);
        expect(Date.parse(w.windowEnd) - Date.parse(w.windowStart)).toBe(
          { ONE_MINUTE: 60_000, FIVE_MINUTES: 300_000, FIFTEEN_MINUTES: 900_000 }[size],
        );
        stored.set(keyOf(w.size, w.windowEnd, w.symbol), w);
      }
      if (!body.data.windowAggregates.pageInfo.hasNextPage) break;
      after = body.data.windowAggregates.pageInfo.endCursor;
    }
  }
  expect([...stored.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [key, w] of stored) expectEqualsOracle(w, want.get(key), `query ${key}`);
  for (const size of SIZES)
    expect([...stored.keys()].filter((k) => k.startsWith(size)).length).toBeGreaterThan(0);
  const revised = [...stored.values()].filter((w) => w.revision > 0);
  expect(revised.length).toBeGreaterThan(0);
}, 180_000);

test("the windowAggregates subscription sent each window when it opened and again when revised, last as the oracle", async () => {
  expect(final).toBeDefined();

  // The subscriptions: each window when it opened and again at each revision, in that order; the last
  // event of each equals the oracle. Windows that opened before the subscription started are not
  // expected; every one after is (the first event of revision 0 is one of those: revisions of older
  // windows come with revision > 0).
  for (const size of SIZES) {
    const rec = live[size];
    expect(rec.errors).toEqual([]);
    const seen = new Map<string, Window[]>();
    for (const { data } of rec.events) {
      const w = data.windowAggregates;
      const key = keyOf(w.size, w.windowEnd, w.symbol);
      seen.set(key, [...(seen.get(key) ?? []), w]);
    }
    const firstEnd = Math.min(
      ...rec.events
        .filter((e) => e.data.windowAggregates.revision === 0)
        .map((e) => Date.parse(e.data.windowAggregates.windowEnd)),
    );
    const expected = [...want.values()].filter((o) => o.size === size && o.windowEnd.getTime() >= firstEnd);
    expect(expected.length).toBeGreaterThan(0);
    for (const o of expected) {
      const key = keyOf(o.size, o.windowEnd, o.symbol);
      const sent = seen.get(key);
      expect([key, sent === undefined]).toEqual([key, false]);
      // Two revisions close together may both be read as the second: never fewer events, never back.
      const revisions = sent!.map((w) => w.revision);
      expect([key, revisions[0], revisions.length >= stored.get(key)!.revision + 1]).toEqual([key, 0, true]);
      expect([key, revisions]).toEqual([key, [...revisions].sort((a, b) => a - b)]);
      expect([key, revisions.at(-1)]).toEqual([key, stored.get(key)!.revision]);
      expectEqualsOracle(sent!.at(-1)!, o, `subscription ${key}`);
    }
  }
  const resent = SIZES.flatMap((size) =>
    live[size].events.filter((e) => e.data.windowAggregates.revision > 0),
  );
  expect(resent.length).toBeGreaterThan(0);
}, 60_000);

test("the topSymbols subscription sent a corrected ranking when a revision changed one; the last is final", async () => {
  expect(final).toBeDefined();

  // Rankings: the last one sent for each window is the final ranking (top 3 by mean, ties by symbol);
  // a revision that changed a ranking was followed by a corrected one.
  const bySent = new Map<string, Ranking[]>();
  for (const { data } of rankings.events)
    bySent.set(data.topSymbols.windowEnd, [
      ...(bySent.get(data.topSymbols.windowEnd) ?? []),
      data.topSymbols,
    ]);
  // Rankings of windows that opened before the subscription come only when revised: expected are the
  // windows from the first of the unbroken run of ends up to the newest.
  let firstRanked = Math.max(...[...bySent.keys()].map(Date.parse));
  while (bySent.has(new Date(firstRanked - 10_000).toISOString())) firstRanked -= 10_000;
  const finalRankings = new Map<string, string[]>();
  for (const o of oracle.filter((x) => x.size === "ONE_MINUTE" && x.windowEnd.getTime() >= firstRanked)) {
    const end = o.windowEnd.toISOString();
    finalRankings.set(end, [...(finalRankings.get(end) ?? []), `${o.symbol} ${o.mean}`]);
  }
  let corrected = 0;
  for (const [end, list] of finalRankings) {
    const top = list
      .map((x) => x.split(" "))
      .sort(([s1, m1], [s2, m2]) => Number(m2) - Number(m1) || (s1 < s2 ? -1 : 1))
      .slice(0, 3);
    const sent = bySent.get(end);
    expect([end, sent === undefined]).toEqual([end, false]);
    const last = sent!.at(-1)!;
    expect([end, last.entries.map((e) => e.symbol)]).toEqual([end, top.map(([s]) => s)]);
    last.entries.forEach((e, i) => expect(near(e.value, Number(top[i][1]))).toBe(true));
    if (sent!.length > 1) corrected++;
  }
  expect(corrected).toBeGreaterThan(0);
});
