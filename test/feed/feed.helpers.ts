import WebSocket from "ws";
import type { MockFeed } from "../../src/feed";

/** A recording stream client: every frame and every parsed message, and waits on either. */
export class TestClient {
  readonly frames: string[] = [];
  readonly messages: Record<string, unknown>[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on("error", () => undefined); // surfaced through `open` or `closed`
    ws.on("message", (data) => {
      const text = data.toString();
      this.frames.push(text);
      try {
        const parsed: unknown = JSON.parse(text);
        if (Array.isArray(parsed)) for (const m of parsed) this.messages.push(m as Record<string, unknown>);
      } catch {
        // garbage frames are kept in `frames` only
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

  static open(url: string, headers?: Record<string, string>): Promise<TestClient> {
    const ws = new WebSocket(url, { headers });
    const client = new TestClient(ws);
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(client));
      ws.once("error", reject);
    });
  }

  /** Connects, authenticates with the feed's default credentials and optionally subscribes. */
  static async ready(feed: MockFeed, sub?: { trades?: string[]; quotes?: string[] }): Promise<TestClient> {
    const c = await TestClient.open(feed.url);
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
    this.ws.send(typeof msg === "string" ? msg : JSON.stringify(msg));
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

export const AUTH_HEADERS = { "APCA-API-KEY-ID": "tickgraph", "APCA-API-SECRET-KEY": "tickgraph" };

export async function getJson<T = unknown>(
  feed: MockFeed,
  path: string,
  headers = AUTH_HEADERS,
): Promise<{ status: number; body: T }> {
  const res = await fetch(feed.restUrl + path, { headers });
  return { status: res.status, body: (await res.json()) as T };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
