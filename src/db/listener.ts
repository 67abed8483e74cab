import { Client, type Pool } from "pg";
import { Backoff } from "../core/timers";
import { log } from "../log";
import { dbListenerConnected, dbListenerReconnects } from "../metrics";

/** What a channel's user is told. */
export interface ChannelHandlers {
  /** A notification's payload. */
  notify(payload: string): void;
  /**
   * The connection was lost and is listening again: notifications sent meanwhile are gone, so re-read
   * from the database whatever they would have said.
   */
  resync(): void;
}

export interface PgListenerOptions {
  url: string;
  /** @default "tickgraph-listen" */
  applicationName?: string;
  /** Waits between reconnect attempts, ms (doubling, jittered). @default 100 up to 2000 */
  backoff?: { firstMs: number; maxMs: number };
}

/** LISTEN takes an identifier, not a parameter: channels are tickgraph's own, checked all the same. */
const CHANNEL_NAME = /^[a-z_][a-z0-9_]*$/;

/**
 * The process's one LISTEN connection, shared by every part that follows a NOTIFY channel (the event
 * bus across replicas, governance's policy changes). When the connection is lost (Postgres restarted
 * or failed over, the network cut) it reconnects with a short backoff and LISTENs again; since what was
 * notified meanwhile is lost, each channel's `resync` is then called. Its health is `connected`, the
 * `tickgraph_db_listener_connected` gauge and a /readyz check.
 */
export class PgListener {
  private client: Client | null = null;
  private readonly channels = new Map<string, Set<ChannelHandlers>>();
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private lostAt: number | null = null;

  private constructor(private readonly opts: PgListenerOptions) {
    this.backoff = new Backoff(opts.backoff?.firstMs ?? 100, opts.backoff?.maxMs ?? 2000, true);
  }

  /** Connects (throwing when Postgres cannot be reached now); reconnects on its own from then on. */
  static async start(opts: PgListenerOptions): Promise<PgListener> {
    const l = new PgListener(opts);
    l.client = await l.connect();
    dbListenerConnected.set(1);
    return l;
  }

  /** Whether the connection is up and listening. */
  get connected(): boolean {
    return this.client !== null;
  }

  /** Follows `channel` until the returned function is called. */
  async listen(channel: string, handlers: ChannelHandlers): Promise<() => Promise<void>> {
    if (!CHANNEL_NAME.test(channel)) throw new Error(`not a channel name: ${channel}`);
    let set = this.channels.get(channel);
    if (!set) {
      this.channels.set(channel, (set = new Set()));
      await this.client?.query(`LISTEN ${channel}`);
    }
    set.add(handlers);
    return async () => {
      set.delete(handlers);
      if (set.size || this.channels.get(channel) !== set) return;
      this.channels.delete(channel);
      await this.client?.query(`UNLISTEN ${channel}`).catch(() => undefined);
    };
  }

  private async connect(): Promise<Client> {
    const client = new Client({
      connectionString: this.opts.url,
      application_name: this.opts.applicationName ?? "tickgraph-listen",
      keepAlive: true,
      // An attempt that gets no answer is given up and tried again, rather than waited on for ever.
      connectionTimeoutMillis: 2000,
    });
    client.on("notification", (msg) => {
      if (this.client !== client) return;
      for (const h of this.channels.get(msg.channel) ?? []) {
        try {
          h.notify(msg.payload ?? "");
        } catch (err) {
          log.error({ err, channel: msg.channel }, "a notification handler threw");
        }
      }
    });
    client.on("error", (err) => this.lost(client, err));
    client.on("end", () => this.lost(client));
    try {
      await client.connect();
      const channels = [...this.channels.keys()];
      if (channels.length) await client.query(channels.map((c) => `LISTEN ${c};`).join(" "));
    } catch (err) {
      client.removeAllListeners("end");
      client.removeAllListeners("error");
      client.on("error", () => undefined);
      await client.end().catch(() => undefined);
      throw err;
    }
    return client;
  }

  private lost(client: Client, err?: Error): void {
    if (this.client !== client) return;
    this.client = null;
    dbListenerConnected.set(0);
    client.on("error", () => undefined);
    void client.end().catch(() => undefined);
    if (this.closed) return;
    this.lostAt = Date.now();
    log.warn(
      { err: err?.message },
      "LISTEN connection lost: events from other replicas and policy changes wait for it to come back",
    );
    this.schedule();
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.reconnect(), this.backoff.delay());
  }

  private async reconnect(): Promise<void> {
    let client: Client;
    try {
      client = await this.connect();
    } catch (err) {
      log.debug({ err: (err as Error).message }, "LISTEN connection: reconnect failed");
      return this.schedule();
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.backoff.reset();
    dbListenerConnected.set(1);
    dbListenerReconnects.inc();
    log.info({ downMs: this.lostAt === null ? null : Date.now() - this.lostAt }, "LISTEN connection back");
    for (const [channel, set] of this.channels)
      for (const h of set) {
        try {
          h.resync();
        } catch (err) {
          log.error({ err, channel }, "a resync handler threw");
        }
      }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = null;
    dbListenerConnected.set(0);
    await client?.end().catch(() => undefined);
  }
}

/** Sends `payloads` on `channel` in order, in one statement. */
export async function notifyAll(pool: Pool, channel: string, payloads: string[]): Promise<void> {
  await pool.query("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS f(p, n) ORDER BY n", [
    channel,
    payloads,
  ]);
}
