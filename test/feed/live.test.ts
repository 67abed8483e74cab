import { setLogLevel } from "../../src/log";
import {
  decodeServerFrame,
  startMockFeed,
  type MockFeed,
  type RawFrame,
  type RestTrade,
  type TradeMessage,
  type TradesPage,
  type WireFormat,
} from "../../src/feed";
import { TestClient, getJson, until } from "./feed.helpers";

beforeAll(() => setLogLevel("warn"));

/**
 * Where a client's data frames start: right after the subscription echo (a data frame may have arrived in
 * the same read, before `ready` returned).
 */
function dataFrom(c: TestClient): number {
  return c.frames.findIndex((f) => f.startsWith('[{"T":"subscription"')) + 1;
}

/** What one client received after its subscription: data frames, and the messages in those that decode to arrays. */
function received(c: TestClient, from: number): { frames: number; messages: number } {
  let messages = 0;
  for (const f of c.frames.slice(from)) {
    try {
      const v: unknown = JSON.parse(f);
      if (Array.isArray(v)) messages += v.length;
    } catch {
      // a malformed frame: counted as a frame only, as the feed counts it
    }
  }
  return { frames: c.frames.length - from, messages };
}

/**
 * Closes the feed and waits for every client to see the close: frames written before it are then all in,
 * so the clients hold everything the feed says it sent them.
 */
async function closeAndCount(
  feed: MockFeed,
  clients: { c: TestClient; from: number }[],
): Promise<{ sent: { frames: number; messages: number }; got: { frames: number; messages: number } }> {
  await feed.close();
  const codes = await Promise.all(clients.map(({ c }) => c.closed.then((x) => x.code)));
  expect(codes.every((code) => code === 1001)).toBe(true);
  const stats = feed.stats();
  const got = { frames: 0, messages: 0 };
  for (const { c, from } of clients) {
    const r = received(c, from);
    got.frames += r.frames;
    got.messages += r.messages;
  }
  return { sent: { frames: stats.framesSent, messages: stats.messagesSent }, got };
}

/**
 * Sorts what a client received as an ingest would: malformed input, and valid trades counted as new,
 * duplicate, out of order (an id below one seen) or late (a time a minute behind one seen). Frames are
 * taken as they arrive, so a test can wait on the counts.
 */
class Tally {
  readonly valid: TradeMessage[] = [];
  malformed = 0;
  duplicates = 0;
  outOfOrder = 0;
  late = 0;
  private consumed = 0;
  private readonly seen = new Set<string>();
  private readonly maxId = new Map<string, number>();
  private readonly maxTime = new Map<string, number>();

  constructor(private readonly known: ReadonlySet<string>) {}

  consume(frames: readonly RawFrame[]): this {
    for (; this.consumed < frames.length; this.consumed++) {
      const parsed = decodeServerFrame(frames[this.consumed]);
      if (!parsed.ok) {
        this.malformed++;
        continue;
      }
      for (const item of parsed.items) {
        if (!item.ok) this.malformed++;
        else if (item.message.T === "t") {
          if (this.known.has(item.message.S)) this.add(item.message);
          else this.malformed++;
        }
      }
    }
    return this;
  }

  private add(t: TradeMessage): void {
    this.valid.push(t);
    const key = `${t.S}#${t.i}`;
    if (this.seen.has(key)) {
      this.duplicates++;
      return;
    }
    this.seen.add(key);
    if (t.i < (this.maxId.get(t.S) ?? 0)) this.outOfOrder++;
    // In msgpack `t` is a Timestamp; its JSON is the feed's RFC 3339 text.
    const time = Date.parse(JSON.parse(JSON.stringify(t.t)) as string);
    if (time < (this.maxTime.get(t.S) ?? 0) - 59_000) this.late++;
    this.maxId.set(t.S, Math.max(t.i, this.maxId.get(t.S) ?? 0));
    this.maxTime.set(t.S, Math.max(time, this.maxTime.get(t.S) ?? 0));
  }
}

test("with faults on: malformed frames, duplicates, out-of-order and late trades arrive; REST history stays exact; clients get all the feed sent", async () => {
  const feed = await startMockFeed({
    seed: 5,
    rate: 3000,
    symbols: 10,
    faults: "malformed=0.02,duplicate=0.02,outoforder=0.02,late=0.01,slow=0.05",
  });
  const clients = await Promise.all(
    (["json", "msgpack"] as WireFormat[]).map(async (format) => {
      const c = await TestClient.ready(feed, { trades: ["*"], quotes: ["*"] }, format);
      return { c, from: dataFrom(c) };
    }),
  );
  const known = new Set(feed.instruments().map((i) => i.symbol));
  const framesOf = (c: TestClient): RawFrame[] =>
    c.format === "json"
      ? c.frames.map((text) => ({ binary: false, text }))
      : c.binaryFrames.map((data) => ({ binary: true, data }));
  const tallies = clients.map(() => new Tally(known));
  try {
    // Every kind of fault has reached both clients, and the stream has stalled at least once.
    await until(
      "each fault to reach each client",
      () =>
        clients.every(({ c }, k) => {
          const t = tallies[k].consume(framesOf(c));
          return t.malformed > 5 && t.duplicates > 5 && t.outOfOrder > 5 && t.late > 2;
        }) && feed.stats().stalls > 0,
      20_000,
    );

    // Everything the clients were counted on is in the history read now.
    const history = new Map<string, Map<number, RestTrade>>();
    for (const symbol of known) {
      const { body } = await getJson<TradesPage>(feed, `/v2/stocks/${symbol}/trades?limit=10000`);
      const ids = body.trades.map((t) => t.i);
      expect(ids).toEqual(ids.map((_, k) => k + 1)); // unique, contiguous: faults never touch the history
      history.set(symbol, new Map(body.trades.map((t) => [t.i, t])));
    }
    for (const tally of tallies) {
      expect(tally.malformed).toBeLessThanOrEqual(feed.stats().malformed);
      for (const t of tally.valid) {
        const { T: _T, S: _S, ...rest } = JSON.parse(JSON.stringify(t)) as TradeMessage;
        expect(rest).toEqual(history.get(t.S)!.get(t.i)); // each valid trade is the history's, real `t` included
      }
    }
  } finally {
    // Nothing lost: every frame and every message the feed says it wrote to these two clients arrived.
    const { sent, got } = await closeAndCount(feed, clients);
    expect(got).toEqual(sent);
    expect(sent.messages).toBeGreaterThan(1000);
  }
});

test("the disconnect fault drops every connection every period", async () => {
  const feed = await startMockFeed({ rate: 100, faults: "disconnect=300ms" });
  const c = await TestClient.ready(feed, { trades: ["*"] });
  try {
    const { code } = await c.closed;
    expect(code).toBe(1006);
    expect(feed.stats().disconnects).toBeGreaterThanOrEqual(1);
    // A reconnect works, and is dropped again.
    const again = await TestClient.ready(feed);
    expect((await again.closed).code).toBe(1006);
  } finally {
    await c.close();
    await feed.close();
  }
});

// How fast the feed delivers is measured by `npm run bench:ingest` (bench/README.md), not here: this
// checks that a heavy offered load loses nothing and keeps each symbol's ids in order, in both formats.
test("under a heavy load a '*' subscriber gets every trade sent, each symbol's ids in order with no gap", async () => {
  const feed = await startMockFeed({ rate: 20_000, symbols: 500, quoteRatio: 0.2 });
  const target = 10_000;
  const clients = await Promise.all(
    (["json", "msgpack"] as WireFormat[]).map(async (format) => {
      const c = await TestClient.ready(feed, { trades: ["*"], quotes: ["*"] }, format);
      return { c, from: dataFrom(c) };
    }),
  );
  try {
    await clients[0].c.until(
      () => (clients.every(({ c }) => c.trades().length >= target) ? true : undefined),
      20_000,
    );
  } finally {
    const { sent, got } = await closeAndCount(feed, clients);
    expect(got).toEqual(sent);
  }
  for (const { c } of clients) {
    const trades = c.trades() as unknown as TradeMessage[];
    expect(trades.length).toBeGreaterThanOrEqual(target);
    const last = new Map<string, number>();
    const gaps: string[] = [];
    for (const m of trades) {
      const prev = last.get(m.S);
      if (prev !== undefined && m.i !== prev + 1) gaps.push(`${m.S} ${prev}->${m.i}`);
      last.set(m.S, m.i);
    }
    expect(gaps).toEqual([]);
  }
});
