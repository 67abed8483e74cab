import { randomUUID } from "node:crypto";
import WebSocket from "ws";

// The subscribers of bench:fanout, in their own process: WebSocket connections speaking
// graphql-transport-ws, `perConnection` subscriptions each. Each event's receive time is noted against its key
// (a ranking's windowEnd, a tick's eventTime); latencies are computed once the publish times are known.
export type ClientCommand =
  | {
      open: {
        url: string;
        token: string;
        n: number;
        perConnection: number;
        operations: { query: string; variables?: object }[];
      };
    }
  | { measure: "start" }
  | { measure: "stop"; published: Record<string, number> }
  | { close: true };
export type ClientReport =
  | { opened: number; failed: number }
  | { latencies: Float64Array; unmatched: number; errors: number }
  | { closed: true };

const now = () => performance.timeOrigin + performance.now();
const send = (r: ClientReport) => process.send!(r);
let sockets: WebSocket[] = [];
let measuring = false;
let keys: string[] = [];
let times: number[] = [];
let errors = 0;

const KEYS = ['"windowEnd":"', '"eventTime":"'];

/** Notes when an event arrived, by its key; the payload is not parsed (the client must keep up). */
function onMessage(data: WebSocket.RawData): void {
  const at = now();
  const text = (data as Buffer).toString();
  if (text.includes('"errors":')) {
    if (!errors) process.stderr.write(`first error: ${text.slice(0, 300)}\n`);
    errors++;
  }
  if (!measuring) return;
  for (const k of KEYS) {
    const from = text.indexOf(k);
    if (from < 0) continue;
    keys.push(text.slice(from + k.length, text.indexOf('"', from + k.length)));
    times.push(at);
    return;
  }
}

function connect(
  url: string,
  token: string,
  ops: { op: { query: string; variables?: object } }[],
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, "graphql-transport-ws", { skipUTF8Validation: true });
    ws.once("error", reject);
    ws.once("close", (code, reason) => reject(new Error(`closed ${code} ${reason.toString()}`)));
    ws.once("open", () =>
      ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } })),
    );
    ws.once("message", (data) => {
      const text = (data as Buffer).toString();
      if ((JSON.parse(text) as { type: string }).type !== "connection_ack") return reject(new Error(text));
      ws.removeAllListeners("close");
      ws.on("close", (code) => {
        if (code !== 1000 && code !== 1005) {
          if (!errors) process.stderr.write(`first close: ${code}\n`);
          errors++;
        }
      });
      ws.on("message", onMessage);
      for (const { op } of ops)
        // Ids as graphql-ws's client makes them (UUIDs): a small integer id would be stored in the
        // server's per-connection record of operations as an array index, a cost real clients never cause.
        ws.send(JSON.stringify({ id: randomUUID(), type: "subscribe", payload: op }));
      resolve(ws);
    });
  });
}

process.on("message", (cmd: ClientCommand) => void onCommand(cmd));

async function onCommand(cmd: ClientCommand): Promise<void> {
  if ("open" in cmd) {
    const { url, token, n, perConnection, operations } = cmd.open;
    const ops = Array.from({ length: n }, (_, k) => ({ op: operations[k % operations.length] }));
    const conns: (typeof ops)[] = [];
    for (let k = 0; k < n; k += perConnection) conns.push(ops.slice(k, k + perConnection));
    let failed = 0;
    for (let k = 0; k < conns.length; k += 250) {
      const batch = await Promise.allSettled(conns.slice(k, k + 250).map((c) => connect(url, token, c)));
      for (const r of batch) {
        if (r.status === "fulfilled") sockets.push(r.value);
        else failed++;
      }
    }
    send({ opened: sockets.length, failed });
  } else if ("measure" in cmd && cmd.measure === "start") {
    keys = [];
    times = [];
    errors = 0;
    measuring = true;
  } else if ("measure" in cmd) {
    measuring = false;
    const lat: number[] = [];
    let unmatched = 0;
    // Rankings are matched to their publish times; a tick carries its own (its eventTime).
    const mapped = Object.keys(cmd.published).length > 0;
    for (let k = 0; k < keys.length; k++) {
      const published = mapped ? cmd.published[keys[k]] : Date.parse(keys[k]);
      if (Number.isFinite(published)) lat.push(times[k] - published);
      else unmatched++;
    }
    send({ latencies: Float64Array.from(lat), unmatched, errors });
  } else if ("close" in cmd) {
    await Promise.all(
      sockets.map(
        (s) =>
          new Promise((r) => {
            s.once("close", r);
            s.close(1000);
          }),
      ),
    );
    sockets = [];
    send({ closed: true });
  }
}
