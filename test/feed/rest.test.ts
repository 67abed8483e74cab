import { setLogLevel } from "../../src/log";
import {
  isTrade,
  parseRfc3339,
  rfc3339Nano,
  startMockFeed,
  type MultiTradesPage,
  type Asset,
  type MockFeed,
  type RestError,
  type RestTrade,
  type SnapshotsResponse,
  type TradeMessage,
  type TradesPage,
} from "../../src/feed";
import { TestClient, getJson, sleep, until } from "./feed.helpers";

beforeAll(() => setLogLevel("warn"));

/** Every trade of `symbol` over REST, following next_page_token to the end. */
async function allTrades(
  feed: MockFeed,
  symbol: string,
  query = "",
  limit = 97,
): Promise<{ trades: RestTrade[]; pages: number }> {
  const trades: RestTrade[] = [];
  let token: string | null = null;
  let pages = 0;
  do {
    const tokenPart: string = token ? `&page_token=${encodeURIComponent(token)}` : "";
    const { status, body } = await getJson<TradesPage>(
      feed,
      `/v2/stocks/${symbol}/trades?limit=${limit}${query || "&start=2026-01-01"}${tokenPart}`,
    );
    expect(status).toBe(200);
    expect(body.symbol).toBe(symbol);
    trades.push(...body.trades);
    token = body.next_page_token;
    pages++;
  } while (token);
  return { trades, pages };
}

describe("mock feed REST", () => {
  let feed: MockFeed;
  let client: TestClient;

  beforeAll(async () => {
    feed = await startMockFeed({ rate: 3000, seed: 21, start: "2026-01-05T14:30:00Z", speed: 10 });
    client = await TestClient.ready(feed, { trades: ["*"], quotes: ["*"] });
    await client.until(
      () => (client.trades().filter((t) => t.S === "AAPL").length > 300 ? true : undefined),
      15_000,
    );
  });
  afterAll(async () => {
    await client.close();
    await feed.close();
  });

  test("without the key headers: 401 JSON", async () => {
    const none = await getJson<RestError>(feed, "/v2/assets", {} as never);
    expect(none.status).toBe(401);
    expect(none.body.code).toBe(40110000);
    const wrong = await getJson<RestError>(feed, "/v2/stocks/AAPL/trades", {
      "APCA-API-KEY-ID": "tickgraph",
      "APCA-API-SECRET-KEY": "nope",
    });
    expect(wrong.status).toBe(401);
  });

  test("GET /v2/assets lists the universe's reference data", async () => {
    const { status, body } = await getJson<Asset[]>(feed, "/v2/assets");
    expect(status).toBe(200);
    expect(body).toHaveLength(50);
    expect(body[0]).toEqual({
      symbol: "AAPL",
      name: "Apple Inc.",
      exchange: "NASDAQ",
      sector: "Information Technology",
    });
    expect(body.map((a) => a.symbol)).toEqual(feed.instruments().map((i) => i.symbol));
  });

  test("paging through a whole history with page_token gives ids 1…n, equal to what was streamed", async () => {
    const streamed = (client.trades() as unknown as TradeMessage[]).filter((t) => t.S === "AAPL");
    const { trades, pages } = await allTrades(feed, "AAPL");
    expect(pages).toBeGreaterThan(3);
    expect(trades.map((t) => t.i)).toEqual(trades.map((_, k) => k + 1));
    for (const t of trades) expect(isTrade({ T: "t", S: "AAPL", ...t })).toBe(true);
    const byId = new Map(trades.map((t) => [t.i, t]));
    for (const s of streamed) {
      const { T: _T, S: _S, ...rest } = s;
      expect(byId.get(s.i)).toEqual(rest);
    }
    // The streamed ids are one contiguous run inside the history.
    expect(streamed.map((s) => s.i)).toEqual(streamed.map((_, k) => streamed[0].i + k));
  });

  test("start/end filter by event time, inclusive, and combine with paging", async () => {
    const { trades } = await allTrades(feed, "MSFT", "", 10_000);
    expect(trades.length).toBeGreaterThan(20);
    const from = trades[5].t;
    const to = trades[trades.length - 5].t;
    const time = (t: RestTrade) => parseRfc3339(t.t)!;
    const at = (t: RestTrade) => [time(t).ms, time(t).nanos];
    const expected = trades.filter((t) => at(t) >= at(trades[5]) && at(t) <= at(trades[trades.length - 5]));
    const ranged = await allTrades(feed, "MSFT", `&start=${from}&end=${to}`, 4);
    expect(ranged.trades).toEqual(expected);
    // Bounds are exact to the nanosecond: one nanosecond later leaves the first trade out.
    const first = time(trades[5]);
    const justAfter = rfc3339Nano(
      first.ms + (first.nanos === 999_999 ? 1 : 0),
      (first.nanos + 1) % 1_000_000,
    );
    const narrowed = await allTrades(feed, "MSFT", `&start=${justAfter}&end=${to}`, 1000);
    expect(narrowed.trades).toEqual(expected.slice(1));
  });

  test("defaults: limit 1000 per page, oldest first, from the start of the current day", async () => {
    await until("more than 1000 AAPL trades", async () => {
      const { body } = await getJson<{ trade: RestTrade }>(feed, "/v2/stocks/AAPL/trades/latest");
      return (body.trade?.i ?? 0) > 1000;
    });
    const { body } = await getJson<TradesPage>(feed, "/v2/stocks/AAPL/trades");
    expect(body.trades).toHaveLength(1000);
    expect(body.trades.map((t) => t.i)).toEqual(body.trades.map((_, k) => k + 1));
    expect(body.next_page_token).not.toBeNull();
    // A start before the day: the same page; a start the next day: nothing.
    expect((await getJson<TradesPage>(feed, "/v2/stocks/AAPL/trades?start=2026-01-04")).body.trades).toEqual(
      body.trades,
    );
    expect((await getJson<TradesPage>(feed, "/v2/stocks/AAPL/trades?start=2026-01-06")).body).toEqual({
      trades: [],
      symbol: "AAPL",
      next_page_token: null,
    });
  });

  test.each([
    ["limit=0", /limit/],
    ["limit=10001", /limit/],
    ["limit=abc", /limit/],
    ["limit=1.5", /limit/],
    ["start=yesterday", /start/],
    ["end=2026-13-45T00:00:00Z", /end/],
    ["start=2026-01-06T00:00:00Z&end=2026-01-05T00:00:00Z", /end should not be before start/],
    ["page_token=garbage", /page_token/],
    ["limit=1&limit=2", /limit/],
    ["sort=up", /sort/],
    ["feed=nasdaq", /feed/],
    ["currency=EUR", /currency/],
  ])("bad parameter %s → 422 {code: 42210000}", async (query, message) => {
    const { status, body } = await getJson<RestError>(feed, `/v2/stocks/AAPL/trades?${query}`);
    expect(status).toBe(422);
    expect(body.code).toBe(42210000);
    expect(body.message).toMatch(message);
  });

  test("a parameter the endpoint does not take → 400 {code: 40010001}", async () => {
    const { status, body } = await getJson<RestError>(feed, "/v2/stocks/AAPL/trades?timeframe=1Min&limt=5");
    expect({ status, body }).toEqual({
      status: 400,
      body: { code: 40010001, message: "unexpected query parameter(s): timeframe, limt" },
    });
    const latest = await getJson<RestError>(feed, "/v2/stocks/AAPL/trades/latest?limit=1");
    expect(latest.status).toBe(400);
  });

  test("a page token only works for its own symbols", async () => {
    const { body } = await getJson<TradesPage>(feed, "/v2/stocks/AAPL/trades?limit=1");
    const other = await getJson<RestError>(feed, `/v2/stocks/MSFT/trades?page_token=${body.next_page_token}`);
    expect(other.status).toBe(422);
    const many = await getJson<RestError>(
      feed,
      `/v2/stocks/trades?symbols=MSFT,NVDA&page_token=${body.next_page_token}`,
    );
    expect(many.status).toBe(422);
  });

  test("several symbols: by symbol, then id; `limit` counts them all; unknown symbols left out", async () => {
    const each = await Promise.all(["AAPL", "NVDA"].map((s) => allTrades(feed, s, "", 10_000)));
    const got: Record<string, RestTrade[]> = {};
    let token: string | null = null;
    let pages = 0;
    do {
      const tokenPart: string = token ? `&page_token=${encodeURIComponent(token)}` : "";
      const { status, body } = await getJson<MultiTradesPage>(
        feed,
        `/v2/stocks/trades?symbols=NVDA,NOPE9,AAPL&start=2026-01-01&limit=333${tokenPart}`,
      );
      expect(status).toBe(200);
      expect(Object.keys(body.trades).every((s) => s === "AAPL" || s === "NVDA")).toBe(true);
      const n = Object.values(body.trades).reduce((sum, list) => sum + list.length, 0);
      if (body.next_page_token) expect(n).toBe(333);
      for (const [symbol, list] of Object.entries(body.trades)) (got[symbol] ??= []).push(...list);
      token = body.next_page_token;
      pages++;
    } while (token);
    // The histories keep growing while paging: each symbol's pages are its history as of the page.
    expect(got.AAPL.map((t) => t.i)).toEqual(got.AAPL.map((_, k) => k + 1));
    expect(got.NVDA.map((t) => t.i)).toEqual(got.NVDA.map((_, k) => k + 1));
    expect(got.AAPL.length).toBeGreaterThanOrEqual(each[0].trades.length);
    expect(got.NVDA.length).toBeGreaterThanOrEqual(each[1].trades.length);
    expect(pages).toBeGreaterThan(2);
    expect((await getJson<RestError>(feed, "/v2/stocks/trades")).status).toBe(422);
    expect((await getJson<RestError>(feed, "/v2/stocks/trades?symbols=AA%20PL")).status).toBe(422);
  });

  test("unknown symbols and paths: 404 JSON", async () => {
    const sym = await getJson<RestError>(feed, "/v2/stocks/NOPE9/trades");
    expect(sym).toEqual({ status: 404, body: { code: 40410000, message: "unknown symbol: NOPE9" } });
    expect((await getJson<RestError>(feed, "/v2/nothing")).status).toBe(404);
  });

  test("snapshots: latest trade, quote and bars per known symbol, unknown ones left out", async () => {
    const { status, body } = await getJson<SnapshotsResponse>(
      feed,
      "/v2/stocks/snapshots?symbols=AAPL,MSFT,NOPE9",
    );
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(["AAPL", "MSFT"]);
    const streamed = (client.trades() as unknown as TradeMessage[]).filter((t) => t.S === "AAPL");
    const snap = body.AAPL;
    expect(snap.latestTrade!.i).toBeGreaterThanOrEqual(streamed.at(-1)!.i);
    expect(snap.latestQuote!.bp).toBeLessThan(snap.latestQuote!.ap);
    expect(Date.parse(snap.latestTrade!.t)).toBeLessThanOrEqual(feed.clock().getTime());
    expect(snap.dailyBar!.t).toBe("2026-01-05T00:00:00Z");
    expect(snap.dailyBar!.n).toBeGreaterThanOrEqual(streamed.at(-1)!.i);
    expect(snap.prevDailyBar).toBeNull();
    const single = await getJson<{ symbol: string; latestTrade: RestTrade }>(
      feed,
      "/v2/stocks/MSFT/snapshot",
    );
    expect(single.body.symbol).toBe("MSFT");
    expect(single.body.latestTrade.i).toBeGreaterThanOrEqual(body.MSFT.latestTrade!.i);
    expect((await getJson(feed, "/v2/stocks/snapshots")).status).toBe(422);
  });

  test("the simulated clock runs at `speed` from `start`", async () => {
    const a = feed.clock().getTime();
    await sleep(200);
    const b = feed.clock().getTime();
    expect(b - a).toBeGreaterThanOrEqual(10 * 150);
    expect(b - a).toBeLessThan(10 * 1000);
    expect(a).toBeGreaterThan(Date.parse("2026-01-05T14:30:00Z"));
  });
});

test("history is bounded per symbol; paging resumes at the oldest trade kept", async () => {
  const feed = await startMockFeed({ rate: 5000, symbols: 5, historyPerSymbol: 200 });
  try {
    await until("the per-symbol bound reached", async () => {
      const { body } = await getJson<{ trade: RestTrade }>(feed, "/v2/stocks/AAPL/trades/latest");
      return (body.trade?.i ?? 0) > 250;
    });
    const { body } = await getJson<TradesPage>(feed, "/v2/stocks/AAPL/trades?limit=10000");
    const trades = body.trades;
    expect(trades).toHaveLength(200);
    expect(trades[0].i).toBeGreaterThan(1);
    expect(trades.map((t) => t.i)).toEqual(trades.map((_, k) => trades[0].i + k));
    // The feed keeps trading while a client pages: evicted ids are skipped, the order never breaks.
    const paged = (await allTrades(feed, "AAPL", "", 50)).trades.map((t) => t.i);
    expect(paged[0]).toBeGreaterThanOrEqual(trades[0].i);
    paged.forEach((id, k) => k > 0 && expect(id).toBeGreaterThan(paged[k - 1]));
  } finally {
    await feed.close();
  }
});

test("determinism end to end: two feeds with the same seed and start serve the same trades", async () => {
  const opts = { seed: 99, rate: 2000, start: "2026-01-05T14:30:00Z", speed: 5 };
  const [a, b] = await Promise.all([startMockFeed(opts), startMockFeed(opts)]);
  try {
    await sleep(300);
    const [ta, tb] = await Promise.all([allTrades(a, "NVDA", "", 10_000), allTrades(b, "NVDA", "", 10_000)]);
    const n = Math.min(ta.trades.length, tb.trades.length);
    expect(n).toBeGreaterThan(10);
    expect(ta.trades.slice(0, n)).toEqual(tb.trades.slice(0, n));
    expect(ta.trades[0].t >= "2026-01-05T14:30:00.000Z").toBe(true);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
