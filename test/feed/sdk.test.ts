import {
  Alpaca,
  TimeFrame,
  ValidationError,
  marketData,
  streaming,
  type marketDataShapes,
} from "@alpacahq/alpaca-trade-api";
import { startMockFeed, type MockFeed, type RestBar, type RestQuote, type RestTrade } from "../../src/feed";
import { parseRfc3339 } from "../../src/feed/timestamp";
import { setLogLevel } from "../../src/log";
import { AUTH_HEADERS, getJson, until } from "./feed.helpers";

// The official SDK, a client no one here wrote, pointed at the mock with its own options: `url` for the
// stream, `basePath` for the generated REST API, a request middleware for the facade (whose options have
// no base URL: it always builds https://data.alpaca.markets/… and the middleware swaps the origin).
const credentials = { keyId: "tickgraph", secret: "tickgraph" };

type Stream = ReturnType<Alpaca["marketData"]["stockStream"]>;
type Received<K extends "onTrade" | "onQuote" | "onBar"> = Parameters<Parameters<Stream[K]>[0]>[0];

beforeAll(() => setLogLevel("warn"));

let feed: MockFeed;
let stocks: marketData.StockApi;
let alpaca: Alpaca;

beforeAll(async () => {
  // One market minute per wall second: minute bars come every second.
  feed = await startMockFeed({ seed: 31, rate: 1500, start: "2026-01-05T14:30:00Z", speed: 60 });
  stocks = new marketData.StockApi(new marketData.Configuration({ basePath: feed.restUrl, ...credentials }));
  alpaca = new Alpaca({
    ...credentials,
    retry: false,
    rateLimit: false,
    middleware: [
      {
        pre: async ({ url, init }) => ({ url: url.replace(marketData.MARKET_DATA_HOST, feed.restUrl), init }),
      },
    ],
  });
});
afterAll(() => feed.close());

/** The same instant, whatever the number of fraction digits. */
const sameTime = (a: string | undefined, b: string) => {
  const x = parseRfc3339(a ?? "");
  const y = parseRfc3339(b)!;
  return x !== undefined && x.ms === y.ms && x.nanos === y.nanos;
};

/** Every trade of `symbol` up to id `upTo` over plain REST. */
async function restTrades(symbol: string): Promise<Map<number, RestTrade>> {
  const { body } = await getJson<{ trades: RestTrade[] }>(
    feed,
    `/v2/stocks/${symbol}/trades?start=2026-01-05T00:00:00Z&limit=10000`,
  );
  return new Map(body.trades.map((t) => [t.i, t]));
}

describe("stream (msgpack, as the SDK speaks it)", () => {
  test("authenticates, subscribes to trades, quotes and bars, and receives them with the feed's values", async () => {
    const stream = alpaca.marketData.stockStream({ url: feed.url, reconnect: false });
    const trades: Received<"onTrade">[] = [];
    const quotes: Received<"onQuote">[] = [];
    const bars: Received<"onBar">[] = [];
    const errors: string[] = [];
    let subscription: Record<string, string[]> | undefined;
    stream.onTrade((t) => trades.push(t));
    stream.onQuote((q) => quotes.push(q));
    stream.onBar((b) => bars.push(b));
    stream.on(streaming.EVENT.CLIENT_ERROR, (e: string) => errors.push(e));
    stream.on(streaming.EVENT.SUBSCRIPTION, (s: Record<string, string[]>) => (subscription = s));
    stream.subscribeForTrades(["AAPL", "MSFT"]);
    stream.subscribeForQuotes(["AAPL"]);
    stream.subscribeForBars(["AAPL", "MSFT"]);
    stream.connect();
    try {
      expect(await stream.waitForAuthentication(10_000)).toBe(true);
      await until(
        "trades, quotes and two minute bars of each symbol",
        () =>
          trades.length > 50 &&
          quotes.length > 20 &&
          ["AAPL", "MSFT"].every((s) => bars.filter((b) => b.symbol === s).length >= 2),
        20_000,
      );
      expect(errors).toEqual([]);
      expect(subscription).toMatchObject({
        trades: ["AAPL", "MSFT"],
        quotes: ["AAPL"],
        bars: ["AAPL", "MSFT"],
        updatedBars: [],
        dailyBars: [],
      });
      expect(new Set(trades.map((t) => t.symbol))).toEqual(new Set(["AAPL", "MSFT"]));
      expect(new Set(quotes.map((q) => q.symbol))).toEqual(new Set(["AAPL"]));

      // Each trade is the feed's trade with that id, its time to the nanosecond.
      const received = [...trades]; // all of them in the histories read next
      for (const symbol of ["AAPL", "MSFT"]) {
        const history = await restTrades(symbol);
        for (const t of received.filter((x) => x.symbol === symbol)) {
          const h = history.get(t.id)!;
          expect({ p: t.price, s: t.size, x: t.exchange, c: t.conditions, z: t.tape }).toEqual({
            p: h.p,
            s: h.s,
            x: h.x,
            c: h.c,
            z: h.z,
          });
          expect(sameTime(t.timestampRaw, h.t)).toBe(true);
          expect(t.timestamp.getTime()).toBe(Date.parse(h.t));
        }
      }
      // Quotes: the REST quote at the same instant has the same book.
      const last = quotes.at(-1)!;
      const { body } = await getJson<{ quotes: RestQuote[] }>(
        feed,
        `/v2/stocks/AAPL/quotes?start=${last.timestampRaw}&end=${last.timestampRaw}`,
      );
      expect(body.quotes.map((q) => [q.bp, q.bs, q.ap, q.as, q.bx, q.ax])).toContainEqual([
        last.bidPrice,
        last.bidSize,
        last.askPrice,
        last.askSize,
        last.bidExchange,
        last.askExchange,
      ]);
      // Bars: what REST serves for the same minute.
      for (const b of bars) {
        const res = await getJson<{ bars: RestBar[] }>(
          feed,
          `/v2/stocks/${b.symbol}/bars?timeframe=1Min&start=${b.timestampRaw}&end=${b.timestampRaw}`,
        );
        expect(res.body.bars).toEqual([
          {
            t: b.timestampRaw!.replace(".000000000Z", "Z"),
            o: b.open,
            h: b.high,
            l: b.low,
            c: b.close,
            v: b.volume,
            n: b.tradeCount,
            vw: b.vwap,
          },
        ]);
      }
    } finally {
      stream.disconnect();
    }
  });

  test("a wrong secret is refused with 402, which the SDK reports as an authentication failure", async () => {
    const stream = new Alpaca({ keyId: "tickgraph", secret: "nope" }).marketData.stockStream({
      url: feed.url,
      reconnect: false,
    });
    stream.on(streaming.EVENT.CLIENT_ERROR, () => undefined);
    stream.connect();
    try {
      const result = await stream.waitForAuthenticationResult(10_000);
      expect(result).toMatchObject({ status: streaming.STREAM_AUTH_STATUS.SERVER_REJECTED, code: 402 });
    } finally {
      stream.disconnect();
    }
  });

  test("the test stream serves FAKEPACA", async () => {
    const stream = alpaca.marketData.stockStream({ url: feed.testUrl, reconnect: false });
    const trades: string[] = [];
    const quotes: string[] = [];
    stream.onTrade((t) => trades.push(t.symbol));
    stream.onQuote((q) => quotes.push(q.symbol));
    stream.subscribeForTrades(["FAKEPACA"]);
    stream.subscribeForQuotes(["FAKEPACA"]);
    stream.connect();
    try {
      await until("FAKEPACA trades and quotes", () => trades.length >= 2 && quotes.length >= 2, 15_000);
      expect(new Set([...trades, ...quotes])).toEqual(new Set(["FAKEPACA"]));
    } finally {
      stream.disconnect();
    }
  });
});

describe("REST", () => {
  // A fixed span of market that has been traded and will not change any more.
  let start: Date;
  let end: Date;
  beforeAll(async () => {
    await until(
      "three market minutes",
      () => feed.clock().getTime() >= Date.parse("2026-01-05T14:33:10Z"),
      20_000,
    );
    start = new Date("2026-01-05T14:30:00Z");
    end = new Date("2026-01-05T14:32:59.999Z");
  });

  /** Every page of one symbol's history through the SDK, following nextPageToken. */
  async function pages<T>(
    fetch: (pageToken: string | undefined) => Promise<{ items: T[]; nextPageToken: string | null }>,
  ): Promise<{ items: T[]; pages: number }> {
    const items: T[] = [];
    let token: string | undefined;
    let n = 0;
    do {
      const page = await fetch(token);
      items.push(...page.items);
      token = page.nextPageToken ?? undefined;
      n++;
    } while (token);
    return { items, pages: n };
  }

  test("trades and quotes of one symbol, paged both ways", async () => {
    const asc = await pages((pageToken) =>
      stocks
        .stockTradeSingle({ symbol: "AAPL", start, end, limit: 50, pageToken })
        .then((r) => ({ items: r.trades, nextPageToken: r.nextPageToken })),
    );
    expect(asc.pages).toBeGreaterThan(2);
    expect(asc.items.map((t) => t.i)).toEqual(asc.items.map((_, k) => k + 1));
    for (const t of asc.items) expect(t.t >= start && t.t <= end).toBe(true);
    const desc = await pages((pageToken) =>
      stocks
        .stockTradeSingle({ symbol: "AAPL", start, end, limit: 37, pageToken, sort: "desc" })
        .then((r) => ({ items: r.trades, nextPageToken: r.nextPageToken })),
    );
    expect(desc.items.map((t) => t.i)).toEqual(asc.items.map((t) => t.i).reverse());

    const quotes = await pages((pageToken) =>
      stocks
        .stockQuoteSingle({ symbol: "AAPL", start, end, limit: 50, pageToken })
        .then((r) => ({ items: r.quotes, nextPageToken: r.nextPageToken })),
    );
    // One quote per trade, at the trade's time, bracketing its price.
    expect(quotes.items).toHaveLength(asc.items.length);
    quotes.items.forEach((q, k) => {
      expect(q.t).toEqual(asc.items[k].t);
      expect(q.bp <= asc.items[k].p && asc.items[k].p <= q.ap).toBe(true);
    });
  });

  test("trades, quotes and bars of several symbols; collectStockTradesBySymbol follows every page", async () => {
    const single = async (symbol: string) =>
      (
        await pages((pageToken) =>
          stocks
            .stockTradeSingle({ symbol, start, end, limit: 10_000, pageToken })
            .then((r) => ({ items: r.trades, nextPageToken: r.nextPageToken })),
        )
      ).items;
    const [aapl, msft] = await Promise.all([single("AAPL"), single("MSFT")]);

    // By symbol, then time; `limit` counts both symbols together, so the pages cross from one to the next.
    const multi: Record<string, marketData.StockTrade[]> = {};
    let token: string | undefined;
    let n = 0;
    do {
      const page = await stocks.stockTrades({
        symbols: "MSFT,AAPL",
        start,
        end,
        limit: 70,
        pageToken: token,
      });
      const count = Object.values(page.trades).reduce((sum, list) => sum + list.length, 0);
      if (page.nextPageToken) expect(count).toBe(70);
      for (const [symbol, list] of Object.entries(page.trades)) (multi[symbol] ??= []).push(...list);
      token = page.nextPageToken ?? undefined;
      n++;
    } while (token);
    expect(n).toBe(Math.ceil((aapl.length + msft.length) / 70));
    const ids = (list: { i: number }[]) => list.map((t) => t.i);
    expect(ids(multi.AAPL)).toEqual(ids(aapl));
    expect(ids(multi.MSFT)).toEqual(ids(msft));

    const collected = await alpaca.marketData.collectStockTradesBySymbol({
      symbols: ["AAPL", "MSFT"],
      start,
      end,
      limit: 100,
    });
    expect(ids(collected.AAPL)).toEqual(ids(aapl));
    expect(ids(collected.MSFT)).toEqual(ids(msft));
    // The normalized accessor on top of it.
    const normalized = await alpaca.marketData.getStockTrades({ symbols: ["MSFT"], start, end });
    expect(normalized.MSFT.map((t: marketDataShapes.Trade) => t.price)).toEqual(msft.map((t) => t.p));

    const quotes = await alpaca.marketData.collectStockQuotesBySymbol({ symbols: "AAPL,MSFT", start, end });
    expect(quotes.AAPL).toHaveLength(aapl.length);
    expect(quotes.MSFT).toHaveLength(msft.length);

    const bars = await alpaca.marketData.collectStockBarsBySymbol({
      symbols: ["AAPL", "MSFT"],
      timeframe: TimeFrame.Minute,
      start,
      end,
      limit: 1,
    });
    for (const [symbol, trades] of [
      ["AAPL", aapl],
      ["MSFT", msft],
    ] as const) {
      expect(bars[symbol].map((b) => new Date(b.t).toISOString())).toEqual([
        "2026-01-05T14:30:00.000Z",
        "2026-01-05T14:31:00.000Z",
        "2026-01-05T14:32:00.000Z",
      ]);
      expect(bars[symbol].reduce((s, b) => s + b.n, 0)).toBe(trades.length);
      expect(bars[symbol].reduce((s, b) => s + b.v, 0)).toBe(trades.reduce((s, t) => s + t.s, 0));
    }
  });

  test("bars: a 5Min bar is its five 1Min bars merged, and each is the aggregate of its trades", async () => {
    await until(
      "the 14:34 minute to close",
      () => feed.clock().getTime() > Date.parse("2026-01-05T14:35:05Z"),
      20_000,
    );
    const five = await stocks.stockBarSingle({
      symbol: "NVDA",
      timeframe: "5Min",
      start: new Date("2026-01-05T14:30:00Z"),
      end: new Date("2026-01-05T14:30:00Z"),
    });
    const ones = await stocks.stockBarSingle({
      symbol: "NVDA",
      timeframe: "1Min",
      start: new Date("2026-01-05T14:30:00Z"),
      end: new Date("2026-01-05T14:34:00Z"),
    });
    const trades = (
      await stocks.stockTradeSingle({
        symbol: "NVDA",
        start: new Date("2026-01-05T14:30:00Z"),
        end: new Date("2026-01-05T14:34:59.999Z"),
        limit: 10_000,
      })
    ).trades;
    expect(five.bars).toHaveLength(1);
    expect(ones.bars).toHaveLength(5);
    const bar = five.bars[0];
    expect(bar.o).toBe(ones.bars[0].o);
    expect(bar.c).toBe(ones.bars.at(-1)!.c);
    expect(bar.h).toBe(Math.max(...ones.bars.map((b) => b.h)));
    expect(bar.l).toBe(Math.min(...ones.bars.map((b) => b.l)));
    expect(bar.v).toBe(ones.bars.reduce((s, b) => s + b.v, 0));
    expect(bar.n).toBe(ones.bars.reduce((s, b) => s + b.n, 0));
    expect(bar.n).toBe(trades.length);
    expect(bar.o).toBe(trades[0].p);
    expect(bar.c).toBe(trades.at(-1)!.p);
    expect(bar.vw).toBeCloseTo(
      trades.reduce((s, t) => s + t.p * t.s, 0) / trades.reduce((s, t) => s + t.s, 0),
      9,
    );
  });

  test("latest trade, quote and bar, and snapshots, for one symbol and several", async () => {
    const [trade, quote, bar, snap] = await Promise.all([
      stocks.stockLatestTradeSingle({ symbol: "AAPL" }),
      stocks.stockLatestQuoteSingle({ symbol: "AAPL" }),
      stocks.stockLatestBarSingle({ symbol: "AAPL" }),
      stocks.stockSnapshotSingle({ symbol: "AAPL" }),
    ]);
    expect(trade.symbol).toBe("AAPL");
    expect(quote.quote.bp).toBeLessThan(quote.quote.ap);
    expect(snap.latestTrade!.i).toBeGreaterThanOrEqual(trade.trade.i);
    expect(snap.minuteBar!.t.getTime()).toBeGreaterThanOrEqual(bar.bar.t.getTime());
    expect(snap.dailyBar!.t.toISOString()).toBe("2026-01-05T00:00:00.000Z");
    expect(snap.dailyBar!.n).toBeGreaterThanOrEqual(snap.latestTrade!.i);
    expect(snap.prevDailyBar).toBeUndefined(); // the market opened today

    const [trades, quotes, bars, snaps] = await Promise.all([
      stocks.stockLatestTrades({ symbols: "AAPL,MSFT,NOPE9" }),
      stocks.stockLatestQuotes({ symbols: "AAPL,MSFT" }),
      stocks.stockLatestBars({ symbols: "AAPL,MSFT" }),
      stocks.stockSnapshots({ symbols: "AAPL,MSFT" }),
    ]);
    expect(Object.keys(trades.trades).sort()).toEqual(["AAPL", "MSFT"]);
    expect(Object.keys(quotes.quotes).sort()).toEqual(["AAPL", "MSFT"]);
    expect(Object.keys(bars.bars).sort()).toEqual(["AAPL", "MSFT"]);
    for (const s of ["AAPL", "MSFT"]) {
      expect(snaps[s].latestTrade!.i).toBeGreaterThanOrEqual(trades.trades[s].i);
      expect(Object.keys(snaps[s]).sort()).toEqual([
        "dailyBar",
        "latestQuote",
        "latestTrade",
        "minuteBar",
        "prevDailyBar",
      ]);
    }
  });

  test("bad parameters are 422 with Alpaca's code, which the SDK raises as a ValidationError", async () => {
    const refused = async (p: Promise<unknown>) => {
      const err = (await p.then(
        () => undefined,
        (e: unknown) => e,
      )) as ValidationError;
      expect(err).toBeInstanceOf(ValidationError);
      expect([err.status, err.code]).toEqual([422, 42210000]);
      return err.message;
    };
    expect(await refused(stocks.stockTradeSingle({ symbol: "AAPL", limit: 0 }))).toMatch(/limit/);
    expect(await refused(stocks.stockBarSingle({ symbol: "AAPL", timeframe: "7Week" }))).toMatch(/timeframe/);
    expect(await refused(stocks.stockTrades({ symbols: "AAPL", start: end, end: start }))).toMatch(
      /end should not be before start/,
    );
    const res = await fetch(`${feed.restUrl}/v2/stocks/AAPL/trades?sort=sideways`, { headers: AUTH_HEADERS });
    expect(res.status).toBe(422);
  });
});
