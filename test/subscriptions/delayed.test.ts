import type { Client as WsClient } from "graphql-ws";
import { Topic } from "../../src/events/bus";
import { createPgEventBus, type PgEventBus } from "../../src/events/pg-bus";
import { Entitlement } from "../../src/policy/principal";
import { rebuildWindows } from "../../src/windows/rebuild";
import { WindowSize } from "../../src/windows/windows";
import { until } from "../support/wait";
import { grantEntitlements } from "../support/governance";
import { startPlatformAtMarketTime, type ClockedPlatform } from "../support/market-clock";
import { seedQuotes } from "../support/seed";
import { startTestPlatform, type TestPlatform } from "../support/server";
import { record, type Recording } from "../support/subscriptions";
import { collect, type Event } from "./live.helpers";

// A caller without REALTIME gets live events only once their data is DELAY_SECONDS old on the market
// clock, each marked delayed; without DEPTH, no bid/ask. On the live market (60 s of delay: one wall
// second at --feed-speed 60), and against a market clock the test moves itself, where what is released
// when can be checked exactly.
let t: TestPlatform;
let dave: WsClient;
const DELAY_MS = 60_000;

beforeAll(async () => {
  t = await startTestPlatform(
    { INGEST: "on", DELAY_SECONDS: "60" },
    { feed: { seed: 9, symbols: 6, rate: 1000, speed: 60, start: "2026-01-05T14:29:00Z" } },
  );
  dave = t.ws({ connectionParams: { authorization: `Bearer ${await t.token("dave")}` } });
});
afterAll(() => t.close());

test("on the live market every live field is served delayed and without depth, ticks in order", async () => {
  // The ingest stores the feed's instruments once it has connected: wait for them.
  const symbols = await until("the feed's instruments", async () => {
    const { body } = await t.gql(`{ instruments { symbol } }`);
    const found = (body.data?.instruments ?? []).map((i: { symbol: string }) => i.symbol).slice(0, 3);
    return found.length === 3 ? (found as string[]) : undefined;
  });
  const [ticks, rankings, aggregates, movers] = await Promise.all([
    collect<{ quoteTicks: { eventTime: string; delayed: boolean; bid: number | null; ask: number | null } }>(
      dave,
      `subscription($s: [String!]!) { quoteTicks(symbols: $s) { eventTime delayed bid ask } }`,
      (e) => e.length >= 50,
      { variables: { s: symbols } },
    ),
    collect<{ topSymbols: { windowEnd: string; delayed: boolean } }>(
      dave,
      `subscription { topSymbols(size: ONE_MINUTE) { windowEnd delayed } }`,
      (e) => e.length >= 5,
    ),
    collect<{ windowAggregates: { windowEnd: string; delayed: boolean } }>(
      dave,
      `subscription { windowAggregates(size: ONE_MINUTE) { windowEnd delayed } }`,
      (e) => new Set(e.map((x) => x.data.windowAggregates.windowEnd)).size >= 3,
    ),
    collect<{ topMovers: { asOf: string; delayed: boolean } }>(
      dave,
      `subscription { topMovers(size: ONE_MINUTE) { asOf delayed } }`,
      (e) => e.length >= 3,
    ),
  ]);
  for (const e of ticks) expect(e.data.quoteTicks).toMatchObject({ delayed: true, bid: null, ask: null });
  for (const d of [
    ...rankings.map((e) => e.data.topSymbols),
    ...aggregates.map((e) => e.data.windowAggregates),
    ...movers.map((e) => e.data.topMovers),
  ])
    expect(d.delayed).toBe(true);
  // Held, not reordered: the ticks come in event-time order.
  const times = ticks.map((e) => Date.parse(e.data.quoteTicks.eventTime));
  expect(times.slice(1).every((x, i) => x >= times[i])).toBe(true);
});

// Its stream moves to the real-time view's: what was still held back for it is skipped (the query API
// serves it), never sent twice or out of order.
test("a caller granted REALTIME mid-stream goes from delayed to live events, in order", async () => {
  const eve = t.ws({ connectionParams: { authorization: `Bearer ${await t.token("eve")}` } });
  type Ranking = { windowEnd: string; delayed: boolean; entries: { symbol: string; value: number }[] };
  const fresh = (e: Event<{ topSymbols: Ranking }>) =>
    !e.data.topSymbols.delayed && Date.parse(e.data.topSymbols.windowEnd) > (e.seen as number) - DELAY_MS;
  const stream = collect<{ topSymbols: Ranking }>(
    eve,
    `subscription { topSymbols(size: ONE_MINUTE) { windowEnd delayed entries { symbol value } } }`,
    (e) => e.some(fresh),
    { onEvent: () => t.platform.ingest!.clock.now().getTime() },
  );
  // Some rankings are held or sent delayed first.
  await collect(dave, `subscription { topSymbols(size: ONE_MINUTE) { windowEnd } }`, (e) => e.length >= 2);
  await grantEntitlements(t, "eve", [Entitlement.REALTIME]);
  const events = await stream;
  expect(events[0].data.topSymbols.delayed).toBe(true);
  // Each event a later window's ranking, or the same window's corrected (late trades revised it): never
  // an earlier window, never the same ranking twice.
  const rankings = events.map((e) => e.data.topSymbols);
  for (let k = 1; k < rankings.length; k++) {
    const [a, b] = [rankings[k - 1], rankings[k]];
    expect(Date.parse(b.windowEnd)).toBeGreaterThanOrEqual(Date.parse(a.windowEnd));
    if (b.windowEnd === a.windowEnd) expect(b.entries).not.toEqual(a.entries);
  }
  const firstLive = events.findIndex((e) => !e.data.topSymbols.delayed);
  expect(events.slice(firstLive).every((e) => !e.data.topSymbols.delayed)).toBe(true);
});

describe("against a market clock the test moves", () => {
  // A replica whose market clock is the committed checkpoint (set by the test), its events from the
  // shared bus (published by the test): what a caller without REALTIME is sent, and when, is exact.
  const T0 = Date.parse("2026-01-05T14:30:00Z");
  const at = (s: number) => new Date(T0 + s * 1000);
  let c: ClockedPlatform;
  let bus: PgEventBus;
  type Live = {
    windowEnd?: string;
    asOf?: string;
    eventTime?: string;
    delayed: boolean;
    bid?: number | null;
  };
  // windowAggregates follows the stored rows themselves (events only say when to read): the test of
  // resumable streams covers its delayed view.
  const FIELDS = {
    topSymbols: `topSymbols(size: ONE_MINUTE) { windowEnd delayed }`,
    topMovers: `topMovers(size: ONE_MINUTE) { asOf delayed }`,
    quoteTicks: `quoteTicks(symbols: ["AAA"]) { eventTime delayed bid }`,
  };
  type Field = keyof typeof FIELDS;
  const subs: Record<"dave" | "rita", Record<Field, Recording<Record<string, Live>>>> = {
    dave: {} as never,
    rita: {} as never,
  };
  /** Per recording, how many of its events earlier phases took. */
  const taken = new Map<Recording<Record<string, Live>>, number>();

  beforeAll(async () => {
    c = await startPlatformAtMarketTime(at(360), { EVENT_BUS: "postgres", DELAY_SECONDS: "60" });
    // Trades up to 359 s: the newest stored trade is a market time the replica may observe too.
    await seedQuotes(c.databaseUrl, {
      symbols: ["AAA", "BBB", "CCC"],
      perSymbol: 359,
      start: at(0),
      marketNow: null,
    });
    const ds = c.platform.db.dataSource;
    await ds.query(`INSERT INTO window_progress (id, emitted_until, final_until) VALUES (1, $1, $1)`, [
      at(700),
    ]);
    bus = await createPgEventBus(c.databaseUrl);
    await grantEntitlements(c, "rita");
    for (const who of ["dave", "rita"] as const) {
      const ws = c.ws({ connectionParams: { authorization: `Bearer ${await c.token(who)}` } });
      for (const field of Object.keys(FIELDS) as Field[])
        subs[who][field] = record(ws, `subscription { ${FIELDS[field]} }`);
    }
    // Subscribed before any window is stored: the current value each board sends first is empty (a
    // mover board saying no window is visible yet), and every window the test publishes is news.
    await until("six subscribers admitted", async () => {
      const text = await (await fetch(c.url.replace("/graphql", "/metrics"))).text();
      return Number(/^tickgraph_subscribers (\d+)/m.exec(text)?.[1] ?? 0) >= 6 ? true : undefined;
    });
    await until("the empty mover boards", () =>
      subs.dave.topMovers.events.length && subs.rita.topMovers.events.length ? true : undefined,
    );
    await rebuildWindows(ds, at(0), at(700));
  });
  afterAll(async () => {
    await bus?.close();
    await c?.close();
  });

  const recordings = () => Object.values(subs).flatMap((s) => Object.values(s));
  /** Seconds since T0 of each event's time. */
  const secondsOf = (r: Record<string, Live>) => {
    const v = Object.values(r)[0];
    return (Date.parse((v.windowEnd ?? v.asOf ?? v.eventTime)!) - T0) / 1000;
  };
  // Window events carry an old watermark: only the test's checkpoint moves the clock.
  const openWindows = (ends: number[]) =>
    bus.publish(Topic.WINDOWS, {
      opened: ends.map((e) => ({ size: WindowSize.ONE_MINUTE, windowEnd: at(e), count: 3 })),
      revised: [],
      finalUntil: null,
      watermark: at(100),
    });
  const trade = (times: number[]) =>
    bus.publish(Topic.QUOTES, {
      id: times.map((_, k) => String(900_000 + k)),
      symbol: times.map(() => "AAA"),
      time: times.map((s) => at(s).toISOString()),
      seq: times.map((s) => Math.round(s * 1000)),
      price: times.map(() => 100),
      size: times.map(() => 10),
      bid: times.map(() => 99.99),
      bidSize: times.map(() => 1),
      ask: times.map(() => 100.01),
      askSize: times.map(() => 1),
      exchange: times.map(() => "V"),
      source: times.map(() => "feed"),
      received: times.map(() => Date.now()),
    });

  /**
   * Publishes a marker every subscriber may see at once and waits until each received it: each stream
   * handles events in order, so everything published before was handled by then. Returns, per
   * subscriber and field, the times of what came since the previous phase (the marker left out).
   */
  async function upToMarker(marker: number): Promise<Record<string, Record<Field, number[]>>> {
    openWindows([marker]);
    trade([marker]);
    await until("every subscription's marker", () =>
      recordings().every((r) => r.events.slice(taken.get(r) ?? 0).some((e) => secondsOf(e.data) === marker))
        ? true
        : undefined,
    );
    const out: Record<string, Record<Field, number[]>> = {};
    for (const [who, fields] of Object.entries(subs)) {
      out[who] = {} as Record<Field, number[]>;
      for (const [field, r] of Object.entries(fields) as [Field, Recording<Record<string, Live>>][]) {
        const fresh = r.events.slice(taken.get(r) ?? 0);
        const end = fresh.findIndex((e) => secondsOf(e.data) === marker);
        taken.set(r, (taken.get(r) ?? 0) + end + 1);
        for (const e of fresh.slice(0, end + 1)) {
          const v = Object.values(e.data)[0];
          expect([who, field, v.delayed]).toEqual([who, field, who === "dave"]);
          if (field === "quoteTicks") expect([who, v.bid]).toEqual([who, who === "dave" ? null : 99.99]);
        }
        out[who][field] = fresh.slice(0, end).map((e) => secondsOf(e.data));
      }
    }
    return out;
  }

  test("each live field releases exactly what the cutoff passed, and the rest as the clock moves on", async () => {
    // Live once a probe gets through to each; what came before is left out. Each probe is a new
    // window: a ranking already sent for a window is not sent again.
    let probe = 0;
    await until("every subscription live", () => {
      probe = (probe % 20) + 1;
      openWindows([probe * 10]);
      trade([probe * 10]);
      return recordings().every((r) => r.events.length > 0) ? true : undefined;
    });
    await upToMarker(210);

    // The clock at 360 s: dave sees up to 300 s (the cutoff itself included), rita everything.
    openWindows([250, 260, 270, 280, 290, 300, 310, 320, 330, 340, 350]);
    trade([290, 299.999, 300, 300.001, 325, 345]);
    const first = await upToMarker(240);
    expect(first.dave).toEqual({
      topSymbols: [250, 260, 270, 280, 290, 300],
      topMovers: [300], // one board, the newest, for windows released together
      quoteTicks: [290, 299.999, 300],
    });
    expect(first.rita).toEqual({
      topSymbols: [250, 260, 270, 280, 290, 300, 310, 320, 330, 340, 350],
      topMovers: [350],
      quoteTicks: [290, 299.999, 300, 300.001, 325, 345],
    });

    // The market moves to 390 s: what was held up to 330 s comes, nothing else is published meanwhile.
    await c.setMarketTime(at(390));
    await until("the held events up to 330 s", () =>
      subs.dave.topSymbols.events.some((e) => secondsOf(e.data) === 330) &&
      subs.dave.quoteTicks.events.some((e) => secondsOf(e.data) === 325) &&
      subs.dave.topMovers.events.some((e) => secondsOf(e.data) === 330)
        ? true
        : undefined,
    );
    const second = await upToMarker(230);
    expect(second.dave).toEqual({
      topSymbols: [310, 320, 330],
      topMovers: [330],
      quoteTicks: [300.001, 325],
    });
    expect(Object.values(second.rita).flat()).toEqual([]);

    // And the rest once the cutoff passes it: held, never lost.
    await c.setMarketTime(at(420));
    await until("the last held events", () =>
      subs.dave.topSymbols.events.some((e) => secondsOf(e.data) === 350) &&
      subs.dave.quoteTicks.events.some((e) => secondsOf(e.data) === 345)
        ? true
        : undefined,
    );
    const third = await upToMarker(220);
    expect(third.dave).toEqual({
      topSymbols: [340, 350],
      topMovers: [350],
      quoteTicks: [345],
    });
  }, 90_000);

  // windowAggregates holds the first row its cutoff has not reached (the rows after it wait for it) and
  // reads again once the cutoff passes it. On the live market window events come a few times per poll
  // interval, most of them about nothing it follows (steps that only move finalUntil): the cutoff must
  // be checked on them too, not only when the bus is quiet for a whole poll interval.
  test("a held windowAggregates row is released as the cutoff passes it, however busy the bus", async () => {
    const ds = c.platform.db.dataSource;
    const seconds = (d: Date | string) => (new Date(d).getTime() - T0) / 1000;
    const cutoff = seconds(c.platform.clock.now()) - DELAY_MS / 1000;
    const stored: number[] = (
      await ds.query(
        `SELECT window_end AS "end" FROM window_aggregates
         WHERE size = 'ONE_MINUTE' AND symbol = 'AAA' AND window_end >= $1 ORDER BY window_end`,
        [at(cutoff)],
      )
    ).map((r: { end: Date }) => seconds(r.end));
    // The current value at the cutoff, then several rows held beyond it.
    expect(stored[0]).toBe(cutoff);
    expect(stored.length).toBeGreaterThan(4);
    const ws = c.ws({ connectionParams: { authorization: `Bearer ${await c.token("dave")}` } });
    const stream = record<{ windowAggregates: { windowEnd: string; delayed: boolean } }>(
      ws,
      `subscription { windowAggregates(size: ONE_MINUTE, symbols: ["AAA"]) { windowEnd delayed } }`,
    );
    const ends = () => stream.events.map((e) => seconds(e.data.windowAggregates.windowEnd));
    await until("the current value", () => stream.events.length > 0);
    const busy = setInterval(
      () => bus.publish(Topic.WINDOWS, { opened: [], revised: [], finalUntil: null, watermark: at(100) }),
      10,
    );
    try {
      // One row at a time: each must be released by the cutoff passing it while the bus stays busy.
      for (const end of stored.slice(1)) {
        await c.setMarketTime(at(end + DELAY_MS / 1000));
        await until(`the row ending at ${end} s`, () => ends().includes(end));
      }
    } finally {
      clearInterval(busy);
      stream.stop();
    }
    expect(ends()).toEqual(stored);
    expect(stream.events.every((e) => e.data.windowAggregates.delayed)).toBe(true);
    expect(stream.errors).toEqual([]);
  }, 90_000);
});
