import WebSocket from "ws";
import {
  CHANNELS,
  MSGPACK_CONTENT_TYPE,
  type Channel,
  type MockFeed,
  type SubscriptionMessage,
  type WireFormat,
} from "../../src/feed";
import { pack, unpack } from "../../src/feed/msgpack";

/**
 * A recording stream client: every frame and every decoded message, and waits on either. A msgpack client
 * asks for msgpack on the upgrade, sends msgpack and decodes binary frames with msgpack.
 */
export class TestClient {
  /** Text frames as received; a binary frame appears here as its JSON rendering (see `binaryFrames`). */
  readonly frames: string[] = [];
  readonly binaryFrames: Buffer[] = [];
  readonly messages: Record<string, unknown>[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];

  private constructor(
    readonly ws: WebSocket,
    readonly format: WireFormat,
  ) {
    ws.on("error", () => undefined); // surfaced through `open` or `closed`
    ws.on("message", (data: Buffer, isBinary) => {
      let parsed: unknown;
      try {
        if (isBinary) {
          this.binaryFrames.push(data);
          parsed = unpack(data);
          this.frames.push(JSON.stringify(parsed));
        } else {
          this.frames.push(data.toString());
          parsed = JSON.parse(data.toString());
        }
        if (Array.isArray(parsed)) for (const m of parsed) this.messages.push(m as Record<string, unknown>);
      } catch {
        // garbage frames are kept in `frames` (text) or `binaryFrames` only
        if (isBinary) this.frames.push("");
      }
      for (const w of this.waiters) w();
    });
    this.closed = new Promise((resolve) =>
      ws.on("close", (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const w of this.waiters) w();
      }),
    );
  }

  static open(
    url: string,
    headers?: Record<string, string>,
    format: WireFormat = "json",
  ): Promise<TestClient> {
    const ws = new WebSocket(url, {
      headers: format === "msgpack" ? { ...headers, "Content-Type": MSGPACK_CONTENT_TYPE } : headers,
    });
    const client = new TestClient(ws, format);
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(client));
      ws.once("error", reject);
    });
  }

  /** Connects, authenticates with the feed's default credentials and optionally subscribes. */
  static async ready(
    feed: MockFeed,
    sub?: Partial<Record<Channel, string[]>>,
    format: WireFormat = "json",
    url = feed.url,
  ): Promise<TestClient> {
    const c = await TestClient.open(url, undefined, format);
    await c.waitFor((m) => m.T === "success" && m.msg === "connected");
    c.send({ action: "auth", key: "tickgraph", secret: "tickgraph" });
    await c.waitFor((m) => m.T === "success" && m.msg === "authenticated");
    if (sub) {
      c.send({ action: "subscribe", ...sub });
      await c.waitFor((m) => m.T === "subscription");
    }
    return c;
  }

  send(msg: unknown): void {
    if (typeof msg === "string") this.ws.send(msg);
    else if (this.format === "msgpack") this.ws.send(pack(msg), { binary: true });
    else this.ws.send(JSON.stringify(msg));
  }

  /** Resolves with the first message (from index `from` on) matching `pred`. */
  waitFor(
    pred: (m: Record<string, unknown>) => boolean,
    timeoutMs = 5000,
    from = 0,
  ): Promise<Record<string, unknown>> {
    return this.until(() => this.messages.slice(from).find(pred), timeoutMs);
  }

  /** Resolves once `check` returns something other than undefined (re-checked on every frame). */
  until<T>(check: () => T | undefined, timeoutMs = 5000): Promise<T> {
    return new Promise((resolve, reject) => {
      const attempt = (): void => {
        const v = check();
        if (v === undefined) return;
        cleanup();
        resolve(v);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms; last messages: ${JSON.stringify(this.messages.slice(-3))}`,
          ),
        );
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== attempt);
      };
      this.waiters.push(attempt);
      attempt();
    });
  }

  trades(): Record<string, unknown>[] {
    return this.messages.filter((m) => m.T === "t");
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    await this.closed;
  }
}

/**
 * The subscription message for `lists` (every channel, empty where not given), corrections and
 * cancelErrors following trades unless given.
 */
export function subscription(lists: Partial<Record<Channel, string[]>>): SubscriptionMessage {
  const out = { T: "subscription" } as SubscriptionMessage;
  for (const c of CHANNELS)
    out[c] = lists[c] ?? (c === "corrections" || c === "cancelErrors" ? (lists.trades ?? []) : []);
  return out;
}

export const AUTH_HEADERS = { "APCA-API-KEY-ID": "tickgraph", "APCA-API-SECRET-KEY": "tickgraph" };

export async function getJson<T = unknown>(
  feed: MockFeed,
  path: string,
  headers = AUTH_HEADERS,
): Promise<{ status: number; body: T }> {
  const res = await fetch(feed.restUrl + path, { headers });
  return { status: res.status, body: (await res.json()) as T };
}

export { sleep, until } from "../support/wait";
