import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { unpack } from "../../src/feed/msgpack";
import { StreamClient } from "../../src/ingest/stream.client";
import { setLogLevel } from "../../src/log";
import { until } from "./ingest.helpers";

let wss: WebSocketServer;
const sockets: WebSocket[] = [];
const received: unknown[] = [];

beforeAll(async () => {
  setLogLevel("silent");
  // A feed that completes the handshake, then says nothing and never pings: a dead peer, as a half-open
  // TCP connection looks from the client's side.
  wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  wss.on("connection", (ws) => {
    sockets.push(ws);
    ws.send(JSON.stringify([{ T: "success", msg: "connected" }]));
    // The client asks for msgpack and writes msgpack; this provider answers in JSON text, which it reads too.
    ws.on("message", (data: Buffer, isBinary) => {
      const m = (isBinary ? unpack(data) : JSON.parse(data.toString())) as { action: string };
      received.push(m);
      if (m.action === "auth") ws.send(JSON.stringify([{ T: "success", msg: "authenticated" }]));
      if (m.action === "subscribe")
        ws.send(JSON.stringify([{ T: "subscription", trades: ["*"], quotes: ["*"] }]));
    });
  });
  await new Promise((r) => wss.once("listening", r));
});
afterAll(async () => {
  for (const s of sockets) s.terminate();
  await new Promise((r) => wss.close(r));
});

test("authenticates, subscribes to everything, and cuts a connection that went silent to reconnect", async () => {
  let ready = 0;
  let down = 0;
  const client = new StreamClient({
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/v2/iex`,
    key: "k",
    secret: "s",
    idleTimeoutMs: 300,
    reconnect: { initialMs: 10, maxMs: 20 },
    onReady: () => ready++,
    onFrame: () => undefined,
    onDown: () => down++,
  });
  client.start();
  try {
    await until("two connections", () => (ready >= 2 ? true : undefined));
    expect(down).toBeGreaterThanOrEqual(1);
    expect(received.slice(0, 2)).toEqual([
      { action: "auth", key: "k", secret: "s" },
      { action: "subscribe", trades: ["*"], quotes: ["*"] },
    ]);
  } finally {
    await client.close();
  }
  expect(client.connected).toBe(false);
});
