import {
  Timestamp,
  isBar,
  isQuote,
  isTrade,
  parseRfc3339,
  startMockFeed,
  type BarMessage,
  type MockFeed,
  type RestBar,
  type RestTrade,
  type TradeMessage,
} from "../../src/feed";
import { setLogLevel } from "../../src/log";
import { TestClient, getJson, subscription } from "./feed.helpers";

beforeAll(() => setLogLevel("warn"));

/** Alpaca's layout: up to nine fraction digits, no trailing zero, none at all on a whole second. */
const RFC3339_NANO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{0,8}[1-9])?Z$/;

async function restTrades(feed: MockFeed, symbol: string): Promise<Map<number, RestTrade>> {
  const { body } = await getJson<{ trades: RestTrade[] }>(
    feed,
    `/v2/stocks/${symbol}/trades?start=2026-01-01&limit=10000`,
  );
  return new Map(body.trades.map((t) => [t.i, t]));
}

async function restBar(feed: MockFeed, symbol: string, t: string, timeframe = "1Min"): Promise<RestBar[]> {
  const { body } = await getJson<{ bars: RestBar[] }>(
    feed,
    `/v2/stocks/${symbol}/bars?timeframe=${timeframe}&start=${t}&end=${t}`,
  );
  return body.bars;
}

describe("formats", () => {
  let feed: MockFeed;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    feed = await startMockFeed({ seed: 41, rate: 2000, start: "2026-01-05T14:30:00Z" });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(() => feed.close());

  test("JSON: event times are RFC 3339 with nanoseconds, as Alpaca writes them", async () => {
    const c = await TestClient.ready(feed, { trades: ["AAPL"], quotes: ["AAPL"] });
    clients.push(c);
    await c.until(() => (c.trades().length >= 40 ? true : undefined), 10_000);
    const data = c.messages.filter((m) => m.T === "t" || m.T === "q");
    for (const m of data) expect(m.t).toMatch(RFC3339_NANO);
    // Times carry sub-millisecond digits, not milliseconds padded out.
    expect(data.filter((m) => /\.\d{4,}Z$/.test(m.t as string)).length).toBeGreaterThan(data.length / 2);
    const received = c.trades() as unknown as TradeMessage[]; // all of them in the history read next
    const history = await restTrades(feed, "AAPL");
    for (const t of received) expect(t.t).toBe(history.get(t.i)!.t);
    expect(c.binaryFrames).toHaveLength(0);
  });

  test("msgpack when the upgrade asks for it: every frame binary, times as the msgpack timestamp type", async () => {
    const mp = await TestClient.open(feed.url, undefined, "msgpack");
    clients.push(mp);
    await mp.waitFor((m) => m.msg === "connected");
    // A control message before auth, answered in msgpack too.
    mp.send({ action: "subscribe", trades: ["AAPL"] });
    expect(await mp.waitFor((m) => m.T === "error")).toEqual({
      T: "error",
      code: 401,
      msg: "not authenticated",
    });
    mp.send({ action: "auth", key: "tickgraph", secret: "tickgraph" });
    await mp.waitFor((m) => m.msg === "authenticated");
    mp.send({ action: "subscribe", trades: ["AAPL", "MSFT"], quotes: ["MSFT"] });
    expect(await mp.waitFor((m) => m.T === "subscription")).toEqual(
      subscription({ trades: ["AAPL", "MSFT"], quotes: ["MSFT"] }),
    );
    await mp.until(() =>
      mp.trades().length >= 30 && mp.messages.some((m) => m.T === "q") ? true : undefined,
    );
    expect(mp.binaryFrames.length).toBe(mp.frames.length); // nothing came as text
    const received = [...mp.messages]; // all of them in the history read next
    const history = new Map([
      ["AAPL", await restTrades(feed, "AAPL")],
      ["MSFT", await restTrades(feed, "MSFT")],
    ]);
    for (const m of received.filter((x) => x.T === "t" || x.T === "q")) {
      expect(m.t).toBeInstanceOf(Timestamp);
      expect(m.T === "t" ? isTrade(m) : isQuote(m)).toBe(true);
      if (m.T !== "t") continue;
      const h = history.get(m.S as string)!.get(m.i as number)!;
      const { T: _T, S: _S, ...rest } = m;
      // The same trade as REST serves it, to the nanosecond.
      expect({ ...rest, t: (m.t as Timestamp).toJSON() }).toEqual(h);
      expect(m.t).toEqual(parseRfc3339(h.t));
    }
  });

  test("the test stream serves FAKEPACA only, in either format", async () => {
    for (const format of ["json", "msgpack"] as const) {
      const c = await TestClient.ready(feed, { trades: ["FAKEPACA"], quotes: ["*"] }, format, feed.testUrl);
      clients.push(c);
      await c.until(() => (c.trades().length >= 2 ? true : undefined), 10_000);
      expect(new Set(c.messages.filter((m) => m.T === "t" || m.T === "q").map((m) => m.S))).toEqual(
        new Set(["FAKEPACA"]),
      );
    }
  });
});

describe("bars", () => {
  test("minute bars right after each minute, and the day so far, equal to REST's bars of the same trades", async () => {
    const feed = await startMockFeed({ seed: 42, rate: 1000, start: "2026-01-05T14:30:00Z", speed: 60 });
    const c = await TestClient.ready(feed, { bars: ["*"], dailyBars: ["AAPL", "MSFT"] }, "msgpack");
    try {
      await c.until(
        () =>
          new Set(c.messages.filter((m) => m.T === "b").map((m) => String(m.t))).size >= 3 ? true : undefined,
        15_000,
      );
      const bars = c.messages.filter((m) => m.T === "b" || m.T === "d") as unknown as BarMessage[];
      for (const b of bars) expect(isBar(b)).toBe(true);
      const minutes = [...new Set(bars.filter((b) => b.T === "b").map((b) => String(b.t)))].sort();
      expect(minutes.slice(0, 3)).toEqual([
        "2026-01-05T14:30:00Z",
        "2026-01-05T14:31:00Z",
        "2026-01-05T14:32:00Z",
      ]);
      // A minute bar for every symbol that traded in the minute, equal to the REST bar, which is made from
      // the trade history: every trade in the minute, none outside it.
      const minuteBars = bars.filter((b) => b.T === "b" && String(b.t) === "2026-01-05T14:31:00Z");
      const { body } = await getJson<{ bars: Record<string, RestBar[]> }>(
        feed,
        `/v2/stocks/bars?timeframe=1Min&start=2026-01-05T14:31:00Z&end=2026-01-05T14:31:00Z&symbols=${feed
          .instruments()
          .map((i) => i.symbol)
          .join(",")}`,
      );
      expect(minuteBars.map((b) => b.S).sort()).toEqual(Object.keys(body.bars).sort());
      for (const b of minuteBars) {
        const { T: _T, S, t, ...rest } = b;
        expect(body.bars[S]).toEqual([{ t: String(t), ...rest }]);
        const { body: trades } = await getJson<{ trades: RestTrade[] }>(
          feed,
          `/v2/stocks/${S}/trades?start=2026-01-05T14:31:00Z&end=2026-01-05T14:31:59.999999999Z&limit=10000`,
        );
        expect(b.n).toBe(trades.trades.length);
        expect(b.v).toBe(trades.trades.reduce((s, x) => s + x.s, 0));
        expect(b.o).toBe(trades.trades[0].p);
        expect(b.c).toBe(trades.trades.at(-1)!.p);
      }
      // Daily bars only for the symbols asked for; the newest is the day so far.
      const daily = bars.filter((b) => b.T === "d");
      expect(new Set(daily.map((b) => b.S))).toEqual(new Set(["AAPL", "MSFT"]));
      expect(new Set(daily.map((b) => String(b.t)))).toEqual(new Set(["2026-01-05T00:00:00Z"]));
      const lastAapl = daily.filter((b) => b.S === "AAPL").at(-1)!;
      const upTo = (await restBar(feed, "AAPL", "2026-01-05T14:30:00Z", "1Min"))[0];
      expect(lastAapl.o).toBe(upTo.o);
      expect(lastAapl.n).toBeGreaterThan(upTo.n);
    } finally {
      await c.close();
      await feed.close();
    }
  });

  test("a late trade into a minute already sent brings an updated bar, equal to the minute's final bar", async () => {
    const feed = await startMockFeed({
      seed: 43,
      rate: 1000,
      symbols: 5,
      start: "2026-01-05T14:30:00Z",
      speed: 60,
      faults: "late=0.05",
    });
    const c = await TestClient.ready(feed, { bars: ["*"], updatedBars: ["*"] });
    try {
      // A revision of a minute whose bar was sent (a late trade may also land in a minute that had none,
      // or one before the feed started: those come as updated bars only).
      const sentOf = (u: Record<string, unknown>) =>
        c.messages.find((m) => m.T === "b" && m.S === u.S && m.t === u.t) as unknown as
          BarMessage | undefined;
      const first = (await c.until(
        () => c.messages.find((m) => m.T === "u" && sentOf(m) !== undefined),
        20_000,
      )) as unknown as BarMessage;
      const updated = c.messages.filter((m) => m.T === "u") as unknown as BarMessage[];
      expect(first.n).toBeGreaterThan(sentOf(first as never)!.n);
      // No late trade reaches the minute after its last slot + 120 s (m + 180 s); their updated bar goes at
      // the next half minute (m + 210 s) at the latest, so once the minute bar of m + 4 min (sent at
      // m + 5 min) is in, the minute's last revision is too.
      const after = new Date(Date.parse(String(first.t)) + 240_000).toISOString().replace(".000Z", "Z");
      await c.until(() => c.messages.find((m) => m.T === "b" && String(m.t) >= after), 20_000);
      const last = updated.filter((u) => u.S === first.S && u.t === first.t).at(-1)!;
      const finalBars = c.messages.filter(
        (m) => (m.T === "u" || m.T === "b") && m.S === first.S && m.t === first.t,
      );
      const { T: _T, S: _S, t, ...rest } = finalBars.at(-1) as unknown as BarMessage;
      expect(await restBar(feed, first.S, String(t))).toEqual([{ t, ...rest }]);
      expect(last.n).toBeLessThanOrEqual(rest.n);
    } finally {
      await c.close();
      await feed.close();
    }
  });
});
