import WebSocket from "ws";
import { pack, unpack } from "../feed/msgpack";
import { MSGPACK_CONTENT_TYPE, type ClientMessage, type RawFrame, type WireFormat } from "../feed/protocol";
import { Backoff } from "../core/timers";
import { log } from "../log";

export interface ReconnectOptions {
  /** First retry delay, ms. @default 250 */
  initialMs?: number;
  /** Cap of the exponential backoff, ms. @default 10000 */
  maxMs?: number;
}

export interface StreamClientOptions {
  url: string;
  key: string;
  secret: string;
  /**
   * Frames' encoding: msgpack is asked for with `Content-Type: application/msgpack` on the upgrade, as
   * Alpaca's SDKs do; a feed that ignores the header answers JSON, which is read all the same.
   * @default "msgpack"
   */
  format?: WireFormat;
  reconnect?: ReconnectOptions;
  /**
   * A connection that delivers neither a frame nor a ping for this long is presumed dead (a half-open
   * TCP connection never closes on its own) and is cut, which reconnects and backfills. The feed pings
   * every 30 s. @default 65000
   */
  idleTimeoutMs?: number;
  /** Authenticated and subscribed: data frames follow. Called once per connection. */
  onReady(): void;
  /** A data frame (after onReady), as it arrived (text or binary), with the wall time it arrived. */
  onFrame(frame: RawFrame, receivedMs: number): void;
  /** The connection went away; a reconnect is scheduled. */
  onDown(): void;
}

type Handshake = { T?: unknown; msg?: unknown; code?: unknown };

/**
 * One WebSocket connection to an Alpaca-v2-style stream at a time: authenticate, subscribe to every
 * trade and quote, hand data frames on, and reconnect after a capped, jittered exponential backoff.
 * The backoff starts over once a connection is ready, unless its owner cut it for failing
 * (`reconnect`): then only `settled` starts it over. Binary frames are msgpack, text frames JSON,
 * whichever format was asked for.
 */
export class StreamClient {
  private ws: WebSocket | null = null;
  private readonly backoff: Backoff;
  /** Cut by its owner for a failure that a reconnect retries: the backoff keeps growing until settled. */
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private ready = false;
  private paused = false;
  private idle: NodeJS.Timeout | undefined;

  constructor(private readonly opts: StreamClientOptions) {
    this.backoff = new Backoff(opts.reconnect?.initialMs ?? 250, opts.reconnect?.maxMs ?? 10_000, true);
  }

  get connected(): boolean {
    return this.ready;
  }

  start(): void {
    this.connect();
  }

  /**
   * Cuts the connection for a failure of what it fed (e.g. a backfill that failed): the client comes
   * back after its backoff, which grows with each such cut until `settled`. The owner sees `onReady`
   * again, and no frame of the old connection after this call.
   */
  reconnect(): void {
    this.failing = true;
    this.ready = false;
    this.ws?.pause();
    this.ws?.terminate();
  }

  /** What the connection fed went well: the next reconnect waits the shortest delay again. */
  settled(): void {
    this.failing = false;
    this.backoff.reset();
  }

  /** Stops reading the socket: TCP flow control then holds the feed back. */
  pause(): void {
    this.paused = true;
    this.ws?.pause();
  }

  resume(): void {
    this.paused = false;
    this.ws?.resume();
  }

  private connect(): void {
    if (this.closed) return;
    const msgpack = (this.opts.format ?? "msgpack") === "msgpack";
    const ws = new WebSocket(this.opts.url, {
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
      headers: msgpack ? { "Content-Type": MSGPACK_CONTENT_TYPE } : undefined,
    });
    this.ws = ws;
    this.ready = false;
    const send = (m: ClientMessage) =>
      msgpack ? ws.send(pack(m), { binary: true }) : ws.send(JSON.stringify(m));
    const alive = (): void => {
      clearTimeout(this.idle);
      this.idle = setTimeout(() => ws.terminate(), this.opts.idleTimeoutMs ?? 65_000);
    };
    alive();
    ws.on("ping", alive);
    ws.on("message", (data, isBinary) => {
      alive();
      const receivedMs = Date.now();
      const raw: RawFrame = isBinary
        ? { binary: true, data: data as Buffer }
        : { binary: false, text: (data as Buffer).toString() };
      if (this.ready) return this.opts.onFrame(raw, receivedMs);
      let frame: unknown;
      try {
        frame = raw.binary ? unpack(raw.data) : JSON.parse(raw.text);
      } catch {
        frame = null;
      }
      for (const m of Array.isArray(frame) ? (frame as Handshake[]) : []) {
        if (m?.T === "success" && m.msg === "connected")
          send({ action: "auth", key: this.opts.key, secret: this.opts.secret });
        else if (m?.T === "success" && m.msg === "authenticated")
          send({ action: "subscribe", trades: ["*"], quotes: ["*"] });
        else if (m?.T === "subscription") {
          this.ready = true;
          if (!this.failing) this.backoff.reset();
          if (this.paused) ws.pause();
          this.opts.onReady();
        } else if (m?.T === "error")
          log.warn({ code: m.code, msg: m.msg }, "feed refused the stream handshake");
      }
    });
    ws.on("error", (err) => log.debug({ err: err.message }, "feed stream error"));
    ws.on("close", (code) => {
      if (this.ws !== ws) return;
      clearTimeout(this.idle);
      const wasReady = this.ready;
      this.ready = false;
      this.ws = null;
      if (this.closed) return;
      if (wasReady) this.opts.onDown();
      const delay = this.backoff.delay();
      log.info({ code, retryInMs: delay }, "feed stream closed; reconnecting");
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.idle);
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (!ws || ws.readyState === ws.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once("close", () => resolve());
      ws.resume();
      if (ws.readyState === ws.CONNECTING) ws.terminate();
      else ws.close(1000, "ingest stopping");
      setTimeout(() => ws.terminate(), 1000).unref();
    });
  }
}
