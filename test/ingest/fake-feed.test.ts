import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { unpack } from "../../src/feed/msgpack";
import type { RestTrade } from "../../src/feed";
import { startIngest, type Ingest } from "../../src/ingest/ingest";
import { setLogLevel } from "../../src/log";
import { testDb, until, type TestDb } from "./ingest.helpers";

// A scripted provider speaking the protocol, for what the mock feed never does: lose a trade without
// dropping the connection, send a time far in the future, or a crossed quote.
const T0 = Date.now();
const iso = (ms: number) => new Date(ms).toISOString();
const trade = (i: number): RestTrade => ({
  i,
  x: "V",
  p: 100 + i,
  s: 10 * i,
  t: iso(T0 + i * 100),
  c: ["@"],
  z: "C",
});

// What the scripted provider serves: set by each test before it starts the ingest.
let history: RestTrade[] = [];
let frames: string[] = [];

let server: Server;
let wss: WebSocketServer;
let db: TestDb;
let ingest: Ingest | undefined;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  setLogLevel("silent");
  db = await testDb();
  server = createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    res.setHeader("content-type", "application/json");
    if (url.pathname === "/v2/assets")
      return res.end(JSON.stringify([{ symbol: "AAPL", name: "Apple", exchange: "NASDAQ", sector: "IT" }]));
    // Nothing has traded yet when the ingest connects: everything comes on the stream.
    if (url.pathname === "/v2/stocks/snapshots") return res.end("{}");
    if (url.pathname === "/v2/stocks/AAPL/trades")
      return res.end(JSON.stringify({ symbol: "AAPL", trades: history, next_page_token: null }));
    res.statusCode = 404;
    return res.end("{}");
  });
  wss = new WebSocketServer({ server });
  wss.on("connection", (ws) => {
    sockets.push(ws);
    ws.send(JSON.stringify([{ T: "success", msg: "connected" }]));
    // The client asks for msgpack and writes msgpack; this provider answers in JSON text, which it reads too.
    ws.on("message", (data: Buffer, isBinary) => {
      const m = (isBinary ? unpack(data) : JSON.parse(data.toString())) as { action: string };
      if (m.action === "auth") ws.send(JSON.stringify([{ T: "success", msg: "authenticated" }]));
      if (m.action !== "subscribe") return;
      ws.send(JSON.stringify([{ T: "subscription", trades: ["*"], quotes: ["*"] }]));
      for (const f of frames) ws.send(f);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
});
afterAll(async () => {
  await ingest?.close();
  for (const s of sockets) s.terminate();
  await new Promise((r) => server.close(r));
  await db.close();
});

beforeEach(() => db.ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`));
afterEach(async () => {
  await ingest?.close();
  ingest = undefined;
});

const t = (r: RestTrade) => JSON.stringify({ T: "t", S: "AAPL", ...r });

test("a hole in the ids that stays open is backfilled over REST; skewed and crossed input is quarantined verbatim", async () => {
  history = [1, 2, 3, 4, 5].map(trade);
  frames = [
    `[{"T":"q","S":"AAPL","bx":"V","bp":101.5,"bs":3,"ax":"V","ap":101.7,"as":4,"t":"${iso(T0)}","c":["R"],"z":"C"}, ${t(trade(1))},${t(trade(2))}]`,
    // Trade 3 never comes on the stream; a crossed quote and a trade dated a day ahead do.
    `[${t(trade(4))},{"T":"q","S":"AAPL","bx":"V","bp":110,"bs":1,"ax":"V","ap":109,"as":1,"t":"${iso(T0)}","c":[],"z":"C"},` +
      `{"T":"t","S":"AAPL","i":99,"x":"V","p":1,"s":1,"t":"${iso(T0 + 86_400_000)}","c":[],"z":"C"},${t(trade(5))}]`,
  ];
  const port = (server.address() as AddressInfo).port;
  const ing = (ingest = startIngest({
    dataSource: db.ds,
    feedUrl: `ws://127.0.0.1:${port}/v2/iex`,
    feedRestUrl: `http://127.0.0.1:${port}`,
    gapCheckMs: 100,
  }));
  await until("trade 3 backfilled", () => (ing.counts().accepted.trades === 5 ? true : undefined));
  await ing.flush();
  const rows: { seq: number; price: number; bid: number; source: string }[] = await db.ds.query(
    `SELECT seq::int AS seq, price, bid, source FROM quotes ORDER BY seq`,
  );
  expect(rows).toEqual([
    { seq: 1, price: 101, bid: 101.5, source: "feed" },
    { seq: 2, price: 102, bid: 101.5, source: "feed" },
    { seq: 3, price: 103, bid: 101.5, source: "backfill" },
    { seq: 4, price: 104, bid: 101.5, source: "feed" },
    { seq: 5, price: 105, bid: 101.5, source: "feed" },
  ]);
  const q: { reason: string; raw: string }[] = await db.ds.query(
    `SELECT reason, raw FROM quarantine ORDER BY id`,
  );
  expect(q.map((r) => r.reason)).toEqual(["CROSSED_QUOTE", "CLOCK_SKEW"]);
  expect(q[0].raw).toBe(
    `{"T":"q","S":"AAPL","bx":"V","bp":110,"bs":1,"ax":"V","ap":109,"as":1,"t":"${iso(T0)}","c":[],"z":"C"}`,
  );
  expect(q[1].raw).toBe(
    `{"T":"t","S":"AAPL","i":99,"x":"V","p":1,"s":1,"t":"${iso(T0 + 86_400_000)}","c":[],"z":"C"}`,
  );
  const [cp] = await db.ds.query(`SELECT last_ids FROM ingest_checkpoints`);
  expect(cp.last_ids).toEqual({ AAPL: 5 });
});

test("LATE iff the watermark passed the pane's end + 30 s; a late trade within that is stored and merged into its pane", async () => {
  const B = Math.floor(T0 / 10_000) * 10_000 - 120_000;
  const at = (i: number, offsetS: number, p: number): RestTrade => ({
    i,
    x: "V",
    p,
    s: 100,
    t: iso(B + offsetS * 1000),
    c: ["@"],
    z: "C",
  });
  // After trade 2 the watermark is B + 72 s − 2 s = B + 70 s.
  const script = [at(1, 1, 10), at(2, 72, 20), at(3, 5, 30), at(4, 35, 40), at(5, 45, 50), at(6, 41, 60)];
  history = script;
  frames = script.map((r) => `[${t(r)}]`);
  const port = (server.address() as AddressInfo).port;
  const buckets = new Set<number>();
  const ing = (ingest = startIngest({
    dataSource: db.ds,
    feedUrl: `ws://127.0.0.1:${port}/v2/iex`,
    feedRestUrl: `http://127.0.0.1:${port}`,
  }));
  ing.onCommit((e) => e.buckets.forEach((b) => buckets.add(b.getTime())));
  await until("all six handled", () => {
    const c = ing.counts();
    return c.received.stream === 6 ? true : undefined;
  });
  await ing.flush();
  const stored: { seq: number }[] = await db.ds.query(`SELECT seq::int AS seq FROM quotes ORDER BY seq`);
  // 3: pane [B, B+10 s) closed at B + 40 s ≤ watermark. 4: pane [B+30 s, B+40 s) closed exactly at B + 70 s.
  expect(stored.map((r) => r.seq)).toEqual([1, 2, 5, 6]);
  const late: { raw: string }[] = await db.ds.query(
    `SELECT raw FROM quarantine WHERE reason = 'LATE' ORDER BY id`,
  );
  expect(late.map((r) => r.raw)).toEqual([t(script[2]), t(script[3])]);
  // 5 and 6 revise pane [B+40 s, B+50 s): open is the earlier by event time (6), close the later (5).
  const [pane] = await db.ds.query(
    `SELECT n, open_px, close_px, volume FROM panes_10s WHERE symbol = 'AAPL' AND bucket = $1`,
    [new Date(B + 40_000)],
  );
  expect(pane).toEqual({ n: 2, open_px: 60, close_px: 50, volume: 200 });
  expect([...buckets].sort()).toEqual([B, B + 40_000, B + 70_000]);
});
