import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { WebSocketServer, type WebSocket } from "ws";
import { MSGPACK_CONTENT_TYPE, parseRfc3339, type Asset, type WireFormat } from "../../src/feed";
import { pack, unpack } from "../../src/feed/msgpack";
import { startIngest, type Ingest } from "../../src/ingest/ingest";
import { setLogLevel } from "../../src/log";
import { startTestPlatform } from "../support/server";
import { storedTime, testDb, until, type TestDb } from "./ingest.helpers";

/**
 * A recorded session in Alpaca's shapes, replayed by a scripted provider in whichever format the ingest
 * asks for. The provider serves its stream and its REST API on different ports, as real providers serve
 * them from different hosts: the ingest must take the REST base from its own setting.
 */
const session = JSON.parse(readFileSync(join(__dirname, "fixtures/alpaca-session.json"), "utf8")) as {
  assets: Asset[];
  frames: Record<string, unknown>[][];
};
const messages = session.frames.flat();
const trades = messages.filter((m) => m.T === "t");
const quotes = messages.filter((m) => m.T === "q");
const others = messages.filter((m) => m.T !== "t" && m.T !== "q");

/** A message as the msgpack stream carries it: event times in the timestamp extension. */
const asMsgpack = (m: Record<string, unknown>) => ({ ...m, t: parseRfc3339(m.t as string) });

let stream: Server;
let rest: Server;
let wss: WebSocketServer;
const sockets: WebSocket[] = [];
const formats: string[] = [];
const restPaths: string[] = [];
let db: TestDb;
let ingest: Ingest | undefined;

beforeAll(async () => {
  setLogLevel("silent");
  rest = createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    restPaths.push(url.pathname);
    res.setHeader("content-type", "application/json");
    if (url.pathname === "/v2/assets") return res.end(JSON.stringify(session.assets));
    // Nothing traded before the session: everything comes on the stream.
    if (url.pathname === "/v2/stocks/snapshots") return res.end("{}");
    res.statusCode = 404;
    return res.end(JSON.stringify({ code: 40410000, message: "endpoint not found" }));
  });
  // The stream's host has no REST API at all.
  stream = createServer((_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  wss = new WebSocketServer({ server: stream });
  wss.on("connection", (ws, req: IncomingMessage) => {
    sockets.push(ws);
    const format: WireFormat = req.headers["content-type"] === MSGPACK_CONTENT_TYPE ? "msgpack" : "json";
    formats.push(format);
    const send = (frame: Record<string, unknown>[]) =>
      format === "msgpack"
        ? ws.send(pack(frame.map((m) => (typeof m.t === "string" ? asMsgpack(m) : m))), { binary: true })
        : ws.send(JSON.stringify(frame));
    send([{ T: "success", msg: "connected" }]);
    ws.on("message", (data: Buffer, isBinary) => {
      const m = (isBinary ? unpack(data) : JSON.parse(data.toString())) as { action: string };
      if (m.action === "auth") send([{ T: "success", msg: "authenticated" }]);
      if (m.action !== "subscribe") return;
      send([
        {
          T: "subscription",
          trades: ["*"],
          quotes: ["*"],
          bars: [],
          updatedBars: [],
          dailyBars: [],
          statuses: [],
          lulds: [],
          corrections: ["*"],
          cancelErrors: ["*"],
        },
      ]);
      for (const frame of session.frames) send(frame);
    });
  });
  await Promise.all([
    new Promise<void>((r) => stream.listen(0, "127.0.0.1", r)),
    new Promise<void>((r) => rest.listen(0, "127.0.0.1", r)),
  ]);
});
afterAll(async () => {
  for (const s of sockets) s.terminate();
  await Promise.all([new Promise((r) => stream.close(r)), new Promise((r) => rest.close(r))]);
});
beforeEach(async () => {
  db = await testDb();
});
afterEach(async () => {
  await ingest?.close();
  ingest = undefined;
  await db.close();
});

test.each(["msgpack", "json"] as const)(
  "over %s, the ingest stores exactly the session's trades and keeps what it does not apply, verbatim",
  async (format) => {
    formats.length = 0;
    restPaths.length = 0;
    const ing = (ingest = startIngest({
      dataSource: db.ds,
      feedUrl: `ws://127.0.0.1:${(stream.address() as AddressInfo).port}/v2/sip`,
      feedRestUrl: `http://127.0.0.1:${(rest.address() as AddressInfo).port}/`,
      format,
    }));
    await until("the whole session", () =>
      ing.counts().received.stream === messages.length ? true : undefined,
    );
    await ing.flush();
    expect(formats).toEqual([format]);
    expect(restPaths).toEqual(expect.arrayContaining(["/v2/assets", "/v2/stocks/snapshots"]));

    const c = ing.counts();
    expect(c).toMatchObject({
      accepted: { trades: trades.length, quotes: quotes.length },
      rejected: { UNSUPPORTED: others.length },
      duplicates: 0,
    });

    // Every trade as sent, its time to the microsecond (nanoseconds truncated), with the book before it.
    const book = new Map<string, Record<string, unknown>>();
    const expected: unknown[] = [];
    for (const m of messages) {
      if (m.T === "q") book.set(m.S as string, m);
      if (m.T !== "t") continue;
      const q = book.get(m.S as string);
      expected.push({
        symbol: m.S,
        seq: m.i,
        price: m.p,
        size: m.s,
        exchange: m.x,
        time: storedTime(m.t as string),
        bid: q?.bp ?? null,
        ask: q?.ap ?? null,
      });
    }
    const rows: unknown[] = await db.ds.query(
      `SELECT symbol, seq::int AS seq, price, size, exchange, bid, ask,
              to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time
       FROM quotes ORDER BY event_time, symbol`,
    );
    expect(rows).toEqual(expected);
    expect(rows).toContainEqual(expect.objectContaining({ time: "2023-04-06T11:54:29.999999Z" }));

    // The correction and the cancel: kept as the message, whichever format it came in.
    const kept: { raw: string; reason: string; detail: string }[] = await db.ds.query(
      `SELECT raw, reason, detail FROM quarantine ORDER BY id`,
    );
    expect(kept.map((k) => k.raw)).toEqual(others.map((m) => JSON.stringify(m)));
    expect(kept.map((k) => k.reason)).toEqual(others.map(() => "UNSUPPORTED"));
    expect(kept[0].detail).toBe(
      'a trade correction (T="c"): tickgraph does not apply it' +
        (format === "msgpack" ? " (msgpack message, kept as its JSON rendering)" : ""),
    );
  },
);

test("serve takes FEED_REST_URL and FEED_FORMAT from its configuration", async () => {
  formats.length = 0;
  restPaths.length = 0;
  const t = await startTestPlatform({
    INGEST: "on",
    FEED_URL: `ws://127.0.0.1:${(stream.address() as AddressInfo).port}/v2/sip`,
    FEED_REST_URL: `http://127.0.0.1:${(rest.address() as AddressInfo).port}`,
    FEED_FORMAT: "json",
    FEED_KEY: "k",
    FEED_SECRET: "s",
  });
  try {
    const ing = t.platform.ingest!;
    await until("the whole session", () =>
      ing.counts().received.stream === messages.length ? true : undefined,
    );
    await ing.flush();
    expect(formats).toEqual(["json"]);
    expect(restPaths).toEqual(expect.arrayContaining(["/v2/assets", "/v2/stocks/snapshots"]));
    expect(ing.counts().accepted.trades).toBe(trades.length);
  } finally {
    await t.close();
  }
});
