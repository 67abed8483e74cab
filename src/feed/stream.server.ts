import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { isRecord } from "../core/records";
import { log } from "../log";
import { credentialsMatch } from "./credentials";
import type { Batch, OutItem } from "./fault.injector";
import { pack, packedArray, unpack } from "./msgpack";
import {
  CHANNEL_OF,
  CHANNELS,
  ERROR_MESSAGES,
  ErrorCode,
  FOREIGN_CHANNELS,
  IMBALANCES,
  KEY_HEADER,
  MSGPACK_CONTENT_TYPE,
  SECRET_HEADER,
  type Channel,
  type ErrorMessage,
  type ServerMessage,
  type SubscriptionMessage,
  type WireFormat,
} from "./protocol";

export interface StreamServerOptions {
  key: string;
  secret: string;
  authTimeoutMs: number;
  maxConnectionsPerKey: number;
  maxSymbols: number;
  maxBufferedBytes: number;
}

/** Per-connection delivery, summed over every connection. */
export interface DeliveryCounters {
  /** Connections accepted since start. */
  accepted: number;
  /** Data frames written to clients (one per client per batch, plus raw malformed frames). */
  frames: number;
  /** Data messages in those frames (raw malformed frames not counted): what clients were sent, one by one. */
  messages: number;
  bytes: number;
  /** Connections closed for reading too slowly (407). */
  slowClients: number;
  /** Connections dropped on purpose (the disconnect fault, dropConnections()). */
  dropped: number;
}

/** Messages per frame at most: a catch-up after a stalled event loop must not become one huge frame. */
const MAX_MESSAGES_PER_FRAME = 5000;
const HEARTBEAT_MS = 30_000;
/** How long a connection we closed may take to finish the close handshake before it is cut. */
const CLOSE_GRACE_MS = 2000;

/** The channels that carry data here; the others are accepted and echoed only. */
const DATA_CHANNELS = Object.values(CHANNEL_OF);

class Session {
  key: string | null = null;
  readonly subs = Object.fromEntries(CHANNELS.map((c) => [c, new Set<string>()])) as Record<
    Channel,
    Set<string>
  >;
  readonly imbalances = new Set<string>();
  /** Canonical form of the data subscriptions: connections with equal keys share one encoded frame. */
  subKey = "";
  subscribed = false;
  closing = false;
  alive = true;
  authTimer: NodeJS.Timeout | undefined;
  closeTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly ws: WebSocket,
    readonly format: WireFormat,
  ) {}

  wants(item: OutItem): boolean {
    const set = this.subs[CHANNEL_OF[item.kind]];
    return set.has("*") || set.has(item.symbol);
  }

  update(): void {
    this.subKey = `${this.format}|${DATA_CHANNELS.map((c) => [...this.subs[c]].sort().join(",")).join("|")}`;
    this.subscribed = DATA_CHANNELS.some((c) => this.subs[c].size > 0);
  }
}

function stringList(v: unknown): string[] | undefined | null {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string" && s.length > 0 && s.length <= 32))
    return null;
  return v as string[];
}

/**
 * The WebSocket side of the feed: connection lifecycle, auth, subscriptions and fan-out. Each connection
 * speaks JSON (text frames) or, when its upgrade request asks for it, msgpack (binary frames). A batch is
 * encoded once per distinct subscription and format and the same bytes are written to every connection
 * that has it, so a thousand "*" subscribers cost one encoding, not a thousand.
 */
export class StreamServer {
  readonly delivery: DeliveryCounters = {
    accepted: 0,
    frames: 0,
    messages: 0,
    bytes: 0,
    slowClients: 0,
    dropped: 0,
  };
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  private readonly sessions = new Set<Session>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly opts: StreamServerOptions) {
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Open connections, and how many of them are authenticated. */
  get connections(): { open: number; authenticated: number } {
    let authenticated = 0;
    for (const s of this.sessions) if (s.key !== null) authenticated++;
    return { open: this.sessions.size, authenticated };
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    // As Alpaca's server does: the upgrade request's Content-Type picks the frames' encoding.
    const msgpack = (req.headers["content-type"] ?? "").toLowerCase().includes(MSGPACK_CONTENT_TYPE);
    const s = new Session(ws, msgpack ? "msgpack" : "json");
    this.sessions.add(s);
    this.delivery.accepted++;
    ws.on("error", (err) => log.debug({ err: err.message }, "feed connection error"));
    ws.on("pong", () => (s.alive = true));
    ws.on("close", () => {
      clearTimeout(s.authTimer);
      clearTimeout(s.closeTimer);
      this.sessions.delete(s);
    });
    ws.on("message", (data, isBinary) => {
      try {
        this.onMessage(s, decodeClientMessage(s.format, data as Buffer, isBinary));
      } catch (err) {
        log.error({ err }, "feed: handling a client message failed");
        this.error(s, ErrorCode.INTERNAL_ERROR);
      }
    });
    this.send(s, [{ T: "success", msg: "connected" }]);
    // Alpaca also accepts the key pair as headers on the upgrade request.
    const key = req.headers[KEY_HEADER.toLowerCase()];
    const secret = req.headers[SECRET_HEADER.toLowerCase()];
    if (typeof key === "string" && typeof secret === "string") {
      this.authenticate(s, key, secret);
      return;
    }
    s.authTimer = setTimeout(() => {
      if (s.key === null) this.fail(s, ErrorCode.AUTH_TIMEOUT);
    }, this.opts.authTimeoutMs);
  }

  private onMessage(s: Session, msg: unknown): void {
    if (s.closing) return;
    if (!isRecord(msg)) return this.error(s, ErrorCode.INVALID_SYNTAX);
    switch (msg.action) {
      case "auth":
        if (s.key !== null) return this.error(s, ErrorCode.ALREADY_AUTHENTICATED);
        if (typeof msg.key !== "string" || typeof msg.secret !== "string")
          return this.error(s, ErrorCode.INVALID_SYNTAX);
        return this.authenticate(s, msg.key, msg.secret);
      case "subscribe":
      case "unsubscribe": {
        if (s.key === null) return this.error(s, ErrorCode.NOT_AUTHENTICATED);
        if (FOREIGN_CHANNELS.some((c) => msg[c] !== undefined))
          return this.error(s, ErrorCode.INVALID_SUBSCRIBE_ACTION);
        const lists: Partial<Record<Channel | typeof IMBALANCES, string[]>> = {};
        for (const c of [...CHANNELS, IMBALANCES] as const) {
          const list = stringList(msg[c]);
          if (list === null) return this.error(s, ErrorCode.INVALID_SYNTAX);
          if (list) lists[c] = list;
        }
        return this.subscribe(s, msg.action === "subscribe", lists);
      }
      default:
        return this.error(s, ErrorCode.INVALID_SYNTAX);
    }
  }

  private authenticate(s: Session, key: string, secret: string): void {
    if (!credentialsMatch(key, secret, this.opts.key, this.opts.secret))
      return this.fail(s, ErrorCode.AUTH_FAILED);
    let sameKey = 0;
    for (const other of this.sessions) if (other.key === key) sameKey++;
    if (sameKey >= this.opts.maxConnectionsPerKey) return this.fail(s, ErrorCode.CONNECTION_LIMIT_EXCEEDED);
    clearTimeout(s.authTimer);
    s.key = key;
    this.send(s, [{ T: "success", msg: "authenticated" }]);
  }

  private subscribe(
    s: Session,
    add: boolean,
    lists: Partial<Record<Channel | typeof IMBALANCES, string[]>>,
  ): void {
    // Trade corrections and cancels follow the trades subscription, as on Alpaca's stream.
    const trades = lists.trades ?? [];
    const changes: [Set<string>, string[]][] = [
      ...CHANNELS.map((c): [Set<string>, string[]] => [s.subs[c], lists[c] ?? []]),
      [s.subs.corrections, trades],
      [s.subs.cancelErrors, trades],
      [s.imbalances, lists[IMBALANCES] ?? []],
    ];
    if (add) {
      // Alpaca limits trades and quotes; bars and the rest are unlimited.
      const union = new Set([...s.subs.trades, ...s.subs.quotes, ...trades, ...(lists.quotes ?? [])]);
      union.delete("*");
      if (union.size > this.opts.maxSymbols) return this.error(s, ErrorCode.SYMBOL_LIMIT_EXCEEDED);
      for (const [set, symbols] of changes) for (const x of symbols) set.add(x);
    } else {
      for (const [set, symbols] of changes) for (const x of symbols) set.delete(x);
    }
    s.update();
    const echo = { T: "subscription" } as SubscriptionMessage;
    for (const c of CHANNELS) echo[c] = [...s.subs[c]];
    if (s.imbalances.size) echo.imbalances = [...s.imbalances];
    this.send(s, [echo]);
  }

  private send(s: Session, frame: ServerMessage[]): void {
    if (s.ws.readyState !== s.ws.OPEN) return;
    if (s.format === "msgpack") s.ws.send(pack(frame), { binary: true });
    else s.ws.send(JSON.stringify(frame));
  }

  private error(s: Session, code: ErrorCode): void {
    const msg: ErrorMessage = { T: "error", code, msg: ERROR_MESSAGES[code] };
    this.send(s, [msg]);
  }

  /** Sends the error, then closes; a peer that does not finish the close handshake is cut. */
  private fail(s: Session, code: ErrorCode): void {
    if (s.closing) return;
    log.debug({ code }, "feed: closing a connection");
    this.error(s, code);
    s.closing = true;
    clearTimeout(s.authTimer);
    s.ws.close(1008, ERROR_MESSAGES[code]);
    s.closeTimer = setTimeout(() => s.ws.terminate(), CLOSE_GRACE_MS);
    s.closeTimer.unref();
  }

  /** Writes one batch to every subscribed connection. */
  broadcast(batch: Batch): void {
    if (!batch.items.length && !batch.raw.length) return;
    const frames = new Map<string, { data: Buffer; messages: number }[]>();
    for (const s of this.sessions) {
      if (s.closing || s.key === null || !s.subscribed || s.ws.readyState !== s.ws.OPEN) continue;
      let out = frames.get(s.subKey);
      if (!out) {
        out = this.frame(s, batch.items);
        frames.set(s.subKey, out);
      }
      const binary = s.format === "msgpack";
      for (const f of out) {
        this.write(s, f.data, binary);
        this.delivery.messages += f.messages;
      }
      for (const r of batch.raw) this.write(s, binary ? r.msgpack : Buffer.from(r.text), binary);
      if (s.ws.bufferedAmount > this.opts.maxBufferedBytes) {
        this.delivery.slowClients++;
        this.fail(s, ErrorCode.SLOW_CLIENT);
      }
    }
  }

  private frame(s: Session, items: readonly OutItem[]): { data: Buffer; messages: number }[] {
    const out: { data: Buffer; messages: number }[] = [];
    let parts: OutItem[] = [];
    const flush = (): void => {
      const data =
        s.format === "msgpack"
          ? packedArray(parts.map((p) => p.msgpack))
          : Buffer.from(`[${parts.map((p) => p.json).join(",")}]`);
      out.push({ data, messages: parts.length });
      parts = [];
    };
    for (const item of items) {
      if (!s.wants(item)) continue;
      parts.push(item);
      if (parts.length === MAX_MESSAGES_PER_FRAME) flush();
    }
    if (parts.length) flush();
    return out;
  }

  private write(s: Session, data: Buffer, binary: boolean): void {
    s.ws.send(data, { binary });
    this.delivery.frames++;
    this.delivery.bytes += data.length;
  }

  /** Cuts every connection without a close handshake, as a network failure would; returns how many. */
  dropAll(): number {
    let n = 0;
    for (const s of this.sessions) {
      s.ws.terminate();
      n++;
    }
    this.delivery.dropped += n;
    return n;
  }

  private beat(): void {
    for (const s of this.sessions) {
      if (!s.alive) {
        s.ws.terminate();
        continue;
      }
      s.alive = false;
      s.ws.ping();
    }
  }

  /** Closes every connection (1001 going away), cutting those that do not answer in time. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    const pending = [...this.sessions].map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.ws.readyState === s.ws.CLOSED) return resolve();
          s.ws.once("close", () => resolve());
          s.closing = true;
          clearTimeout(s.authTimer);
          s.ws.close(1001, "feed shutting down");
          clearTimeout(s.closeTimer);
          s.closeTimer = setTimeout(() => s.ws.terminate(), CLOSE_GRACE_MS);
        }),
    );
    await Promise.all(pending);
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/**
 * A client message: JSON text, or on a msgpack connection a msgpack binary frame (what Alpaca's SDKs
 * send); undefined when it does not decode.
 */
function decodeClientMessage(format: WireFormat, data: Buffer, binary: boolean): unknown {
  try {
    return binary && format === "msgpack" ? unpack(data) : JSON.parse(data.toString());
  } catch {
    return undefined;
  }
}
