import { setLogLevel } from "../../src/log";
import {
  parseServerFrame,
  startMockFeed,
  type RestTrade,
  type TradeMessage,
  type TradesPage,
} from "../../src/feed";
import { TestClient, getJson, sleep } from "./feed.helpers";

beforeAll(() => setLogLevel("warn"));

test("with faults on: malformed frames, duplicates, out-of-order and late trades arrive; REST history stays exact", async () => {
  const feed = await startMockFeed({
    seed: 5,
    rate: 3000,
    symbols: 10,
    faults: "malformed=0.02,duplicate=0.02,outoforder=0.02,late=0.01,slow=0.05",
  });
  const c = await TestClient.ready(feed, { trades: ["*"], quotes: ["*"] });
  try {
    await c.until(() => {
      const s = feed.stats();
      return s.malformed > 20 && s.duplicates > 20 && s.outOfOrder > 20 && s.late > 10 && s.stalls > 0
        ? true
        : undefined;
    }, 20_000);
    await sleep(2500); // let the last stall's backlog and held-back trades out

    // Sort what the client received into valid trades and malformed input, as an ingest would.
    const valid: TradeMessage[] = [];
    let malformed = 0;
    const known = new Set(feed.instruments().map((i) => i.symbol));
    for (const frame of c.frames) {
      const parsed = parseServerFrame(frame);
      if (!parsed.ok) {
        malformed++;
        continue;
      }
      for (const item of parsed.items) {
        if (!item.ok) malformed++;
        else if (item.message.T === "t") {
          if (known.has(item.message.S)) valid.push(item.message);
          else malformed++;
        }
      }
    }
    expect(malformed).toBeGreaterThan(0);
    expect(malformed).toBeLessThanOrEqual(feed.stats().malformed);

    const history = new Map<string, Map<number, RestTrade>>();
    for (const symbol of known) {
      const { body } = await getJson<TradesPage>(feed, `/v2/stocks/${symbol}/trades?limit=10000`);
      const ids = body.trades.map((t) => t.i);
      expect(ids).toEqual(ids.map((_, k) => k + 1)); // unique, contiguous: faults never touch the history
      history.set(symbol, new Map(body.trades.map((t) => [t.i, t])));
    }

    let duplicates = 0;
    let outOfOrder = 0;
    let late = 0;
    const seen = new Set<string>();
    const maxId = new Map<string, number>();
    const maxTime = new Map<string, number>();
    for (const t of valid) {
      const { T: _T, S: _S, ...rest } = t;
      expect(history.get(t.S)!.get(t.i)).toEqual(rest); // each valid trade is the history's, real `t` included
      const key = `${t.S}#${t.i}`;
      if (seen.has(key)) {
        duplicates++;
        continue;
      }
      seen.add(key);
      if (t.i < (maxId.get(t.S) ?? 0)) outOfOrder++;
      const time = Date.parse(t.t);
      if (time < (maxTime.get(t.S) ?? 0) - 59_000) late++;
      maxId.set(t.S, Math.max(t.i, maxId.get(t.S) ?? 0));
      maxTime.set(t.S, Math.max(time, maxTime.get(t.S) ?? 0));
    }
    expect(duplicates).toBeGreaterThan(0);
    expect(outOfOrder).toBeGreaterThan(0);
    expect(late).toBeGreaterThan(0);

    // Nothing lost: from its first id on, the client has every id of each symbol (or can backfill it).
    const stats = feed.stats();
    expect(stats.generated).toBeGreaterThanOrEqual(stats.trades);
    expect(stats.trades + 50).toBeGreaterThanOrEqual(stats.generated); // only held-back trades may lag
  } finally {
    await c.close();
    await feed.close();
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

test("throughput end to end: 100,000 trades/s reach a '*' subscriber with no id gap", async () => {
  const feed = await startMockFeed({ rate: 100_000, symbols: 500, quoteRatio: 0.2 });
  const c = await TestClient.ready(feed, { trades: ["*"], quotes: ["*"] });
  const target = 100_000;
  let count = 0;
  const last = new Map<string, number>();
  const gaps: string[] = [];
  // Count as frames arrive instead of keeping 100k parsed messages around.
  c.ws.on("message", (data) => {
    for (const m of JSON.parse(data.toString()) as TradeMessage[]) {
      if (m.T !== "t") continue;
      count++;
      const prev = last.get(m.S);
      if (prev !== undefined && m.i !== prev + 1) gaps.push(`${m.S} ${prev}->${m.i}`);
      last.set(m.S, m.i);
    }
  });
  try {
    for (let waited = 0; count < target && waited < 30_000; waited += 50) await sleep(50);
    expect(count).toBeGreaterThanOrEqual(target);
    expect(gaps).toEqual([]);
    expect(feed.stats().trades).toBeGreaterThanOrEqual(target);
  } finally {
    c.messages.length = 0;
    await c.close();
    await feed.close();
  }
});
