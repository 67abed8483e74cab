import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { log } from "../log";
import { credentialsMatch } from "./credentials";
import type { Batch, OutItem } from "./fault.injector";
import {
  ERROR_MESSAGES,
  ErrorCode,
  KEY_HEADER,
  SECRET_HEADER,
  type ErrorMessage,
  type ServerMessage,
  type SubscriptionMessage,
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

class Session {
  key: string | null = null;
  readonly trades = new Set<string>();
  readonly quotes = new Set<string>();
  /** Canonical form of the subscription: connections with equal keys share one serialized frame. */
  subKey = "";
  closing = false;
  alive = true;
  authTimer: NodeJS.Timeout | undefined;
  closeTimer: NodeJS.Timeout | undefined;

  constructor(readonly ws: WebSocket) {}

  get subscribed(): boolean {
    return this.trades.size > 0 || this.quotes.size > 0;
  }

  wants(item: OutItem): boolean {
    const set = item.kind === "t" ? this.trades : this.quotes;
    return set.has("*") || set.has(item.symbol);
  }

  updateKey(): void {
    this.subKey = `${[...this.trades].sort().join(",")}|${[...this.quotes].sort().join(",")}`;
  }
}

function stringList(v: unknown): string[] | undefined | null {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string" && s.length > 0 && s.length <= 32))
    return null;
  return v as string[];
}

/**
 * The WebSocket side of the feed: connection lifecycle, auth, subscriptions and fan-out. A batch is
 * serialized once per distinct subscription and the same bytes are written to every connection that has
 * it, so a thousand "*" subscribers cost one serialization, not a thousand.
 */
export class StreamServer {
  readonly delivery: DeliveryCounters = { accepted: 0, frames: 0, bytes: 0, slowClients: 0, dropped: 0 };
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
    const s = new Session(ws);
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
        this.onMessage(s, isBinary ? null : data.toString());
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

  private onMessage(s: Session, text: string | null): void {
    if (s.closing) return;
    let msg: unknown;
    try {
      msg = text === null ? undefined : JSON.parse(text);
    } catch {
      msg = undefined;
    }
    if (typeof msg !== "object" || msg === null || Array.isArray(msg))
      return this.error(s, ErrorCode.INVALID_SYNTAX);
    const m = msg as Record<string, unknown>;
    switch (m.action) {
      case "auth":
        if (s.key !== null) return this.error(s, ErrorCode.ALREADY_AUTHENTICATED);
        if (typeof m.key !== "string" || typeof m.secret !== "string")
          return this.error(s, ErrorCode.INVALID_SYNTAX);
        return this.authenticate(s, m.key, m.secret);
      case "subscribe":
      case "unsubscribe": {
        if (s.key === null) return this.error(s, ErrorCode.NOT_AUTHENTICATED);
        const trades = stringList(m.trades);
        const quotes = stringList(m.quotes);
        if (trades === null || quotes === null) return this.error(s, ErrorCode.INVALID_SYNTAX);
        return this.subscribe(s, m.action === "subscribe", trades ?? [], quotes ?? []);
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

  private subscribe(s: Session, add: boolean, trades: string[], quotes: string[]): void {
    if (add) {
      const union = new Set([...s.trades, ...s.quotes, ...trades, ...quotes]);
      union.delete("*");
      if (union.size > this.opts.maxSymbols) return this.error(s, ErrorCode.SYMBOL_LIMIT_EXCEEDED);
      for (const t of trades) s.trades.add(t);
      for (const q of quotes) s.quotes.add(q);
    } else {
      for (const t of trades) s.trades.delete(t);
      for (const q of quotes) s.quotes.delete(q);
    }
    s.updateKey();
    const echo: SubscriptionMessage = { T: "subscription", trades: [...s.trades], quotes: [...s.quotes] };
    this.send(s, [echo]);
  }

  private send(s: Session, frame: ServerMessage[]): void {
    if (s.ws.readyState === s.ws.OPEN) s.ws.send(JSON.stringify(frame));
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
    const frames = new Map<string, Buffer[]>();
    const raw = batch.raw.map((r) => Buffer.from(r));
    for (const s of this.sessions) {
      if (s.closing || s.key === null || !s.subscribed || s.ws.readyState !== s.ws.OPEN) continue;
      let out = frames.get(s.subKey);
      if (!out) {
        out = this.frame(s, batch.items);
        frames.set(s.subKey, out);
      }
      for (const f of out) this.write(s, f);
      for (const r of raw) this.write(s, r);
      if (s.ws.bufferedAmount > this.opts.maxBufferedBytes) {
        this.delivery.slowClients++;
        this.fail(s, ErrorCode.SLOW_CLIENT);
      }
    }
  }

  private frame(s: Session, items: readonly OutItem[]): Buffer[] {
    const out: Buffer[] = [];
    let parts: string[] = [];
    for (const item of items) {
      if (!s.wants(item)) continue;
      parts.push(item.json);
      if (parts.length === MAX_MESSAGES_PER_FRAME) {
        out.push(Buffer.from(`[${parts.join(",")}]`));
        parts = [];
      }
    }
    if (parts.length) out.push(Buffer.from(`[${parts.join(",")}]`));
    return out;
  }

  private write(s: Session, data: Buffer): void {
    s.ws.send(data, { binary: false });
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
