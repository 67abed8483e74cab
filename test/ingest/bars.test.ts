import { startMockFeed, type MockFeed, type MultiBarsPage, type RestBar } from "../../src/feed";
import { startIngest, type Ingest } from "../../src/ingest/ingest";
import { setLogLevel } from "../../src/log";
import { WindowEngine } from "../../src/windows/window.engine";
import { getJson } from "../feed/feed.helpers";
import { testDb, until, type TestDb } from "./ingest.helpers";

// The feed's bars and tickgraph's windows are computed apart (the feed from its generated trades, tickgraph
// from what it ingested, through panes on the production path) by the same definitions: a 1Min bar is the
// ONE_MINUTE window over the same minute, a 5Min bar the FIVE_MINUTES window over the same five.

let db: TestDb;
let feed: MockFeed;
let ingest: Ingest;
let engine: WindowEngine;

beforeAll(async () => {
  setLogLevel("silent");
  db = await testDb();
  feed = await startMockFeed({ seed: 51, rate: 800, symbols: 6, start: "2026-01-05T14:30:00Z", speed: 60 });
  engine = new WindowEngine(db.ds);
  await engine.start();
  ingest = startIngest({ dataSource: db.ds, feedUrl: feed.url, feedRestUrl: feed.restUrl });
  ingest.onCommit((e) => engine.onCommit(e));
});
afterAll(async () => {
  await ingest?.close();
  await engine?.idle();
  await feed?.close();
  await db?.close();
});

interface Window {
  symbol: string;
  start: string;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  vwap: number;
  n: number;
}

test("1Min and 5Min bars equal tickgraph's final windows over the same intervals", async () => {
  await until(
    "windows up to 14:35 final",
    async () => {
      const [p] = await db.ds.query(`SELECT final_until FROM window_progress`);
      return p?.final_until && p.final_until >= new Date("2026-01-05T14:35:00Z") ? true : undefined;
    },
    25_000,
  );
  const symbols = feed.instruments().map((i) => i.symbol);
  const windows = async (size: string, starts: string[]): Promise<Window[]> =>
    db.ds.query(
      `SELECT symbol, to_char(window_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS start,
              open, high, low, close, volume, vwap, tick_count AS n
       FROM window_aggregates WHERE size = $1 AND window_start = ANY($2::timestamptz[])
       ORDER BY symbol, window_start`,
      [size, starts],
    );
  const bars = async (timeframe: string, start: string, end: string): Promise<Window[]> => {
    const { status, body } = await getJson<MultiBarsPage>(
      feed,
      `/v2/stocks/bars?timeframe=${timeframe}&start=${start}&end=${end}&limit=10000&symbols=${symbols.join(",")}`,
    );
    expect(status).toBe(200);
    return Object.entries(body.bars).flatMap(([symbol, list]) =>
      list.map((b: RestBar) => ({
        symbol,
        start: b.t,
        open: b.o,
        high: b.h,
        low: b.l,
        close: b.c,
        volume: b.v,
        vwap: b.vw,
        n: b.n,
      })),
    );
  };
  const minutes = [0, 1, 2, 3, 4].map((k) => `2026-01-05T14:3${k}:00Z`);
  for (const [size, timeframe, starts] of [
    ["ONE_MINUTE", "1Min", minutes],
    ["FIVE_MINUTES", "5Min", [minutes[0]]],
  ] as const) {
    const got = await windows(size, [...starts]);
    const want = await bars(timeframe, starts[0], starts.at(-1)!);
    expect(want).toHaveLength(symbols.length * starts.length); // every symbol traded in every minute
    // vwap: the same sums taken in another order can differ in the last bits.
    const exact = (w: Window) => ({ ...w, vwap: undefined });
    expect(got.map(exact)).toEqual(want.map(exact));
    got.forEach((w, k) => expect(w.vwap).toBeCloseTo(want[k].vwap, 9));
  }
});
