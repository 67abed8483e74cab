import { WebSocketServer, type WebSocket } from "ws";
import type { ServerCommand, ServerReport } from "./fanout.server";

// The floor of bench:fanout: a bare `ws` server that speaks just enough graphql-transport-ws (ack,
// remember each subscribe) and, per event, writes one ready-made ranking message to every subscriber:
// no GraphQL, no policy, no database. What it takes is what writing to that many sockets costs here.
const now = () => performance.timeOrigin + performance.now();
const send = (r: ServerReport) => process.send!(r);
const subscribers: { socket: WebSocket; prefix: string }[] = [];

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/graphql" });
wss.on("connection", (socket) => {
  socket.on("message", (data) => {
    const msg = JSON.parse(String(data)) as { type: string; id?: string };
    if (msg.type === "connection_init") socket.send(JSON.stringify({ type: "connection_ack" }));
    else if (msg.type === "subscribe")
      subscribers.push({ socket, prefix: `{"id":${JSON.stringify(msg.id)},"type":"next","payload":` });
  });
  socket.on("close", () => {
    for (let k = subscribers.length - 1; k >= 0; k--)
      if (subscribers[k].socket === socket) subscribers.splice(k, 1);
  });
});

let cpu = process.cpuUsage();
let wall = now();
let rssPeak = 0;
setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage.rss())), 100).unref();

process.on("message", (cmd: ServerCommand) => {
  if ("ask" in cmd) {
    send({ subscribers: subscribers.length });
    return;
  }
  if ("measure" in cmd) {
    if (cmd.measure === "start") {
      cpu = process.cpuUsage();
      wall = now();
      rssPeak = process.memoryUsage.rss();
    } else {
      const used = process.cpuUsage(cpu);
      send({ cpuMs: (used.user + used.system) / 1000, wallMs: now() - wall, rssPeakMb: rssPeak / 2 ** 20 });
    }
    return;
  }
  if (cmd.publish !== "windows") throw new Error("the floor server publishes rankings only");
  const { ends, rate } = cmd;
  let k = 0;
  const t0 = now();
  const step = () => {
    if (k >= ends.length) {
      send({ done: true });
      return;
    }
    const at = now();
    const entries = [1, 2, 3].map((rank) => ({ rank, symbol: `S00${rank}`, value: 150 - rank }));
    const body = JSON.stringify({ data: { topSymbols: { windowEnd: ends[k], entries } } });
    for (const s of subscribers) s.socket.send(s.prefix + body + "}");
    send({ published: ends[k], at });
    k++;
    setTimeout(step, Math.max(0, t0 + (k * 1000) / rate - now()));
  };
  step();
});

wss.on("listening", () => send({ port: (wss.address() as { port: number }).port }));
