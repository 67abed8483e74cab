import { setLogLevel } from "../../src/log";
import { isQuote, isTrade, startMockFeed, type MockFeed, type TradeMessage } from "../../src/feed";
import { AUTH_HEADERS, TestClient, sleep, subscription } from "./feed.helpers";

beforeAll(() => setLogLevel("warn"));

describe("mock feed stream", () => {
  let feed: MockFeed;
  const clients: TestClient[] = [];
  const track = (c: TestClient): TestClient => (clients.push(c), c);

  beforeAll(async () => {
    feed = await startMockFeed({
      rate: 2000,
      seed: 7,
      authTimeoutMs: 300,
      maxSymbols: 3,
      maxConnectionsPerKey: 3,
    });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(() => feed.close());

  test("connect, auth, subscribe: each step answered as Alpaca does", async () => {
    const c = track(await TestClient.open(feed.url));
    expect(await c.waitFor(() => true)).toEqual({ T: "success", msg: "connected" });
    expect(c.frames[0]).toBe('[{"T":"success","msg":"connected"}]');
    c.send({ action: "auth", key: "tickgraph", secret: "tickgraph" });
    expect(await c.waitFor((m) => m.msg === "authenticated")).toEqual({ T: "success", msg: "authenticated" });
    c.send({ action: "subscribe", trades: ["AAPL"], quotes: ["MSFT"] });
    await c.waitFor((m) => m.T === "subscription");
    // Every channel, in Alpaca's order; corrections and cancel/errors come with trades. (Data may follow
    // in the same read: the echo is found by its type.)
    expect(c.frames.find((f) => f.startsWith('[{"T":"subscription"'))).toBe(
      '[{"T":"subscription","trades":["AAPL"],"quotes":["MSFT"],"bars":[],"updatedBars":[],"dailyBars":[],' +
        '"statuses":[],"lulds":[],"corrections":["AAPL"],"cancelErrors":["AAPL"]}]',
    );
    c.send({ action: "subscribe", trades: ["MSFT"], bars: ["*"], statuses: ["AAPL"], lulds: ["MSFT"] });
    const n = c.messages.length;
    expect(await c.waitFor((m) => m.T === "subscription", 5000, n)).toEqual(
      subscription({
        trades: ["AAPL", "MSFT"],
        quotes: ["MSFT"],
        bars: ["*"],
        statuses: ["AAPL"],
        lulds: ["MSFT"],
      }),
    );
    c.send({ action: "unsubscribe", trades: ["AAPL"], quotes: ["MSFT"], bars: ["*"] });
    const k = c.messages.length;
    expect(await c.waitFor((m) => m.T === "subscription", 5000, k)).toEqual(
      subscription({ trades: ["MSFT"], statuses: ["AAPL"], lulds: ["MSFT"] }),
    );
    // Corrections and cancel/errors can also be named on their own.
    c.send({ action: "subscribe", corrections: ["TSLA"], cancelErrors: ["*"] });
    const j = c.messages.length;
    expect(await c.waitFor((m) => m.T === "subscription", 5000, j)).toMatchObject({
      corrections: ["MSFT", "TSLA"],
      cancelErrors: ["MSFT", "*"],
    });
  });

  test("trades arrive batched, valid, only for the subscribed symbols, ids rising by one", async () => {
    const c = track(await TestClient.ready(feed, { trades: ["AAPL", "MSFT"], quotes: ["AAPL"] }));
    await c.until(() => (c.trades().filter((t) => t.S === "MSFT").length >= 5 ? true : undefined), 10_000);
    const data = c.messages.filter((m) => m.T === "t" || m.T === "q");
    for (const m of data) {
      if (m.T === "t") {
        expect(isTrade(m)).toBe(true);
        expect(["AAPL", "MSFT"]).toContain(m.S);
      } else {
        expect(isQuote(m)).toBe(true);
        expect(m.S).toBe("AAPL");
        expect(m.bp as number).toBeLessThan(m.ap as number);
      }
    }
    for (const sym of ["AAPL", "MSFT"]) {
      const ids = (c.trades() as unknown as TradeMessage[]).filter((t) => t.S === sym).map((t) => t.i);
      expect(ids.length).toBeGreaterThan(1);
      ids.forEach((id, k) => k > 0 && expect(id).toBe(ids[k - 1] + 1));
      const times = (c.trades() as unknown as TradeMessage[])
        .filter((t) => t.S === sym)
        .map((t) => Date.parse(t.t));
      times.forEach((t, k) => k > 0 && expect(t).toBeGreaterThanOrEqual(times[k - 1]));
    }
    // Event times follow the simulated clock, never ahead of it.
    const last = c.trades().at(-1) as unknown as TradeMessage;
    expect(Date.parse(last.t)).toBeLessThanOrEqual(feed.clock().getTime());
    // Data frames are arrays of several messages, not one frame per message.
    expect(c.frames.some((f) => f.startsWith('[{"T":"') && f.split('{"T":').length > 2)).toBe(true);
  });

  test('"*" subscribes to every symbol', async () => {
    const c = track(await TestClient.ready(feed, { trades: ["*"], quotes: ["*"] }));
    expect(c.messages.find((m) => m.T === "subscription")).toEqual(
      subscription({ trades: ["*"], quotes: ["*"] }),
    );
    await c.until(() => (new Set(c.trades().map((t) => t.S)).size >= 10 ? true : undefined), 10_000);
    const bySymbol = new Map<string, number[]>();
    for (const t of c.trades() as unknown as TradeMessage[]) {
      bySymbol.set(t.S, [...(bySymbol.get(t.S) ?? []), t.i]);
    }
    for (const ids of bySymbol.values()) ids.forEach((id, k) => k > 0 && expect(id).toBe(ids[k - 1] + 1));
    expect(c.messages.some((m) => m.T === "q")).toBe(true);
  });

  test("key pair in the upgrade headers authenticates at once", async () => {
    const c = track(await TestClient.open(feed.url, AUTH_HEADERS));
    await c.waitFor((m) => m.msg === "authenticated");
    expect(c.messages.slice(0, 2)).toEqual([
      { T: "success", msg: "connected" },
      { T: "success", msg: "authenticated" },
    ]);
  });

  test("400 invalid syntax: not JSON, not an object, unknown action, wrong field types", async () => {
    const c = track(await TestClient.ready(feed));
    for (const bad of [
      "not json",
      "[1,2]",
      '{"action":"dance"}',
      '{"action":"subscribe","trades":"AAPL"}',
      '{"action":"subscribe","dailyBars":[1]}',
    ]) {
      const n = c.messages.length;
      c.send(bad);
      expect(await c.waitFor((m) => m.T === "error", 5000, n)).toEqual({
        T: "error",
        code: 400,
        msg: "invalid syntax",
      });
    }
    c.send({ action: "subscribe", trades: ["AAPL"] });
    await c.waitFor((m) => m.T === "subscription"); // still open and usable
  });

  test("410 for a channel of another stream (orderbooks, news); the subscription is left as it was", async () => {
    const c = track(await TestClient.ready(feed, { trades: ["AAPL"] }));
    c.send({ action: "subscribe", trades: ["MSFT"], orderbooks: ["AAPL"] });
    expect(await c.waitFor((m) => m.T === "error")).toEqual({
      T: "error",
      code: 410,
      msg: "invalid subscribe action for this feed",
    });
    c.send({ action: "subscribe", quotes: ["AAPL"] });
    const n = c.messages.length;
    expect(await c.waitFor((m) => m.T === "subscription", 5000, n)).toEqual(
      subscription({ trades: ["AAPL"], quotes: ["AAPL"] }),
    );
  });

  test("401 not authenticated: subscribe before auth", async () => {
    const c = track(await TestClient.open(feed.url));
    c.send({ action: "subscribe", trades: ["AAPL"] });
    expect(await c.waitFor((m) => m.T === "error")).toEqual({
      T: "error",
      code: 401,
      msg: "not authenticated",
    });
  });

  test("402 auth failed, then the server closes", async () => {
    const c = track(await TestClient.open(feed.url));
    c.send({ action: "auth", key: "tickgraph", secret: "wrong" });
    expect(await c.waitFor((m) => m.T === "error")).toEqual({ T: "error", code: 402, msg: "auth failed" });
    expect((await c.closed).code).toBe(1008);
  });

  test("403 already authenticated", async () => {
    const c = track(await TestClient.ready(feed));
    c.send({ action: "auth", key: "tickgraph", secret: "tickgraph" });
    expect(await c.waitFor((m) => m.T === "error")).toEqual({
      T: "error",
      code: 403,
      msg: "already authenticated",
    });
  });

  test("404 auth timeout, then the server closes", async () => {
    const c = track(await TestClient.open(feed.url));
    expect(await c.waitFor((m) => m.T === "error", 3000)).toEqual({
      T: "error",
      code: 404,
      msg: "auth timeout",
    });
    await c.closed;
  });

  test("405 symbol limit exceeded leaves the subscription as it was", async () => {
    const c = track(await TestClient.ready(feed, { trades: ["AAPL", "MSFT"] }));
    c.send({ action: "subscribe", quotes: ["NVDA", "AMZN"] });
    expect(await c.waitFor((m) => m.T === "error")).toEqual({
      T: "error",
      code: 405,
      msg: "symbol limit exceeded",
    });
    // "*", a symbol already held and bars (unlimited) do not count.
    c.send({ action: "subscribe", quotes: ["*", "AAPL"], bars: ["NVDA", "AMZN", "TSLA", "META"] });
    const n = c.messages.length;
    expect(await c.waitFor((m) => m.T === "subscription", 5000, n)).toEqual(
      subscription({
        trades: ["AAPL", "MSFT"],
        quotes: ["*", "AAPL"],
        bars: ["NVDA", "AMZN", "TSLA", "META"],
      }),
    );
  });

  test("406 connection limit exceeded for the fourth connection of a key", async () => {
    for (let k = 0; k < 3; k++) track(await TestClient.ready(feed));
    const c = track(await TestClient.open(feed.url));
    c.send({ action: "auth", key: "tickgraph", secret: "tickgraph" });
    expect(await c.waitFor((m) => m.T === "error")).toEqual({
      T: "error",
      code: 406,
      msg: "connection limit exceeded",
    });
    await c.closed;
  });

  test("only the stream paths upgrade", async () => {
    await expect(TestClient.open(feed.url.replace("/v2/iex", "/v2/nope"))).rejects.toThrow(/404/);
    const sip = track(await TestClient.open(feed.url.replace("/v2/iex", "/v2/sip")));
    await sip.waitFor((m) => m.msg === "connected");
  });

  test("dropConnections cuts every socket without a close handshake", async () => {
    const a = track(await TestClient.ready(feed, { trades: ["*"] }));
    const b = track(await TestClient.open(feed.url));
    const before = feed.stats().disconnects;
    feed.dropConnections();
    expect((await a.closed).code).toBe(1006);
    expect((await b.closed).code).toBe(1006);
    expect(feed.stats().disconnects).toBe(before + 2);
  });
});

test("407 slow client: a reader that stops reading is cut off", async () => {
  const feed = await startMockFeed({ rate: 20_000, maxBufferedBytes: 256 * 1024 });
  const c = await TestClient.ready(feed, { trades: ["*"], quotes: ["*"] });
  c.ws.pause();
  try {
    // A paused client's socket stops reading: once the kernel buffers fill, the server's queue grows.
    for (let i = 0; i < 400 && feed.stats().slowClients === 0; i++) await sleep(50);
    expect(feed.stats().slowClients).toBe(1);
    c.ws.resume();
    expect(await c.waitFor((m) => m.T === "error", 10_000)).toEqual({
      T: "error",
      code: 407,
      msg: "slow client",
    });
    await c.closed;
  } finally {
    c.ws.resume();
    await c.close();
    await feed.close();
  }
});
