import { WebSocketServer, type WebSocket } from "ws";
import { answerCommands, report } from "./fanout.protocol";

// The floor of bench:fanout: a bare `ws` server that speaks just enough graphql-transport-ws (ack,
// remember each subscribe) and, per event, writes one ready-made ranking message to every subscriber:
// no GraphQL, no policy, no database. What it takes is what writing to that many sockets costs here.
const subscribers: { socket: WebSocket; prefix: string }[] = [];

const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/graphql" });
wss.on("connection", (socket) => {
  socket.on("message", (data) => {
    const msg = JSON.parse((data as Buffer).toString()) as { type: string; id?: string };
    if (msg.type === "connection_init") socket.send(JSON.stringify({ type: "connection_ack" }));
    else if (msg.type === "subscribe")
      subscribers.push({ socket, prefix: `{"id":${JSON.stringify(msg.id)},"type":"next","payload":` });
  });
  socket.on("close", () => {
    for (let k = subscribers.length - 1; k >= 0; k--)
      if (subscribers[k].socket === socket) subscribers.splice(k, 1);
  });
});

answerCommands({
  subscribers: () => subscribers.length,
  publish(cmd, k) {
    if (cmd.publish !== "windows") throw new Error("the floor server publishes rankings only");
    const entries = [1, 2, 3].map((rank) => ({ rank, symbol: `S00${rank}`, value: 150 - rank }));
    const body = JSON.stringify({ data: { topSymbols: { windowEnd: cmd.ends[k], entries } } });
    for (const s of subscribers) s.socket.send(s.prefix + body + "}");
    return cmd.ends[k];
  },
});

wss.on("listening", () => report({ port: (wss.address() as { port: number }).port }));
