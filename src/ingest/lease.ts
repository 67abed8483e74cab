import { fnv1a } from "../core/hash";
import { OutageLog } from "../core/outage";
import { LeaseSession } from "../db/lease-session";
import { log } from "../log";
import type { IngestState, IngestStatus } from "./ingest";
import { ingestLeaseHeld } from "./ingest.metrics";

/** First half of the advisory-lock key: "tick" in ASCII, so that tickgraph's locks are told apart. */
const LOCK_NAMESPACE = 0x7469636b;

/** Second half of the key: FNV-1a of the stream name, kept to 31 bits so that it reads the same as an oid. */
export function leaseKey(stream: string): [number, number] {
  return [LOCK_NAMESPACE, fnv1a(stream) & 0x7fffffff];
}

/**
 * Ingest status as one replica of several sees it: the loop's own while it holds the lease; otherwise
 * state "following", the watermark of the committed checkpoint and zero counts. Either way with the
 * replica's name and the lease's holder.
 */
export type ReplicaIngestStatus = Omit<IngestStatus, "state"> & {
  state: IngestState | "following";
  replica: string;
  leaseHolder: string | null;
};

export interface IngestLeaseOptions {
  /** The shared database. */
  url: string;
  /** The ingest stream (checkpoint key): one lease per stream. */
  stream: string;
  /** This replica's name, shown to the others as the holder. */
  replica: string;
  /** How often a replica without the lease tries to take it, and the holder checks its session, ms. @default 1000 */
  retryMs?: number;
  /**
   * Called once the lease is taken, with the stream's new epoch (see CLAIM_STREAM), claimed on the
   * session holding the lock: hand it to the writer. Start the work the lease guards.
   */
  onAcquired: (epoch: string) => Promise<void>;
  /**
   * Called when the lease is lost (its connection dropped) or given up at close: stop the work at once.
   * `graceful` is true at close, while the lease is still held, so buffered work may still be committed.
   */
  onReleased: (graceful: boolean) => Promise<void>;
}

/**
 * The ingest lease: a session-level advisory lock (`pg_try_advisory_lock`) on a dedicated connection.
 * Whoever holds it runs ingest; the others try again every `retryMs`. Postgres releases the lock when
 * the holder's session ends (a killed process's socket closes), so another replica takes over within
 * about `retryMs`. If the holder's connection fails, it stops its work before anyone can take over:
 * the lock is gone only once the session is.
 */
export class IngestLease {
  private client: LeaseSession | null = null;
  private heldNow = false;
  private closed = false;
  private holderName: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private closing: Promise<void> | undefined;
  /** Starts and stops of the guarded work, one at a time and in order. */
  private transitions: Promise<void> = Promise.resolve();
  private readonly key: [number, number];
  private readonly retryMs: number;
  private readonly outage = new OutageLog("ingest lease");

  constructor(private readonly opts: IngestLeaseOptions) {
    this.key = leaseKey(opts.stream);
    this.retryMs = opts.retryMs ?? 1000;
  }

  /** Whether this replica holds the lease. */
  get held(): boolean {
    return this.heldNow;
  }

  /** Whether this replica is connected and contending (holding or ready to take over). */
  get connected(): boolean {
    return this.client !== null;
  }

  /** The holder's replica name as last seen (this replica's when it holds it); null when nobody does. */
  get holder(): string | null {
    return this.heldNow ? this.opts.replica : this.holderName;
  }

  /** Makes the first attempt (and starts the work if it took the lease), then keeps trying in the background. */
  async start(): Promise<void> {
    await this.attempt();
    await this.transitions;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, this.retryMs);
      });
      this.wake = null;
      if (!this.closed) await this.attempt();
    }
  }

  /** One step: connect if needed, then take the lease, or check that the session holding it is alive. */
  private async attempt(): Promise<void> {
    try {
      const client = this.client ?? (await this.connect());
      if (this.heldNow) {
        await client.ping();
        this.outage.ok();
        return;
      }
      const ok = await client.tryLock(this.key);
      this.outage.ok();
      if (ok && this.client === client && !this.closed) {
        // Claimed on this session: while it lives it holds the lock, so a replica that lost the lock
        // cannot claim the stream back from the one that took it over.
        const epoch = await client.claim(this.opts.stream);
        if (this.client !== client || this.closed) return;
        this.heldNow = true;
        ingestLeaseHeld.set(1);
        log.info(
          { replica: this.opts.replica, stream: this.opts.stream },
          "ingest lease taken: this replica ingests",
        );
        this.change(async () => {
          try {
            await this.opts.onAcquired(epoch);
          } catch (err) {
            // Holding the lease without doing its work would stall ingest for everyone: give it back.
            log.error({ err }, "ingest lease: starting ingest failed; giving the lease up");
            if (this.client === client) this.drop();
          }
        });
      } else if (ok) {
        // Taken on a connection being dropped, or while closing: the session's end gives it back.
      } else {
        const holder = await client.holderOf(this.key);
        if (holder !== this.holderName)
          log.info({ holder, replica: this.opts.replica }, "ingest lease held by another replica");
        this.holderName = holder;
      }
    } catch (err) {
      this.outage.failed(err, { retryInMs: this.retryMs });
      this.drop();
    }
  }

  private async connect(): Promise<LeaseSession> {
    let client: LeaseSession | undefined = undefined;
    client = await LeaseSession.open({
      url: this.opts.url,
      replica: this.opts.replica,
      retryMs: this.retryMs,
      onLost: (err) => {
        // Postgres restarting or failing over: the lease is taken again once it answers (a warning, not an error).
        if (err) log.warn({ err: err.message }, "ingest lease: connection failed");
        if (client && this.client === client) this.drop();
      },
    });
    if (this.closed) {
      await client.end();
      throw new Error("closed");
    }
    this.client = client;
    return client;
  }

  /** Forgets the connection; if it held the lease, the work stops now (fencing: never two writers). */
  private drop(): void {
    const client = this.client;
    this.client = null;
    if (client) void client.end();
    this.holderName = null;
    if (this.heldNow) {
      this.heldNow = false;
      ingestLeaseHeld.set(0);
      log.warn({ replica: this.opts.replica }, "ingest lease lost: ingest stopped");
      this.change(() => this.opts.onReleased(false));
      this.wake?.();
    }
  }

  private change(step: () => Promise<void>): void {
    this.transitions = this.transitions.then(step).catch((err) => {
      log.error({ err }, "ingest lease: starting or stopping ingest failed");
    });
  }

  /** Stops trying; if it holds the lease, stops the work (letting it commit what it holds), then releases it. */
  close(): Promise<void> {
    this.closing ??= this.release();
    return this.closing;
  }

  private async release(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    await this.transitions;
    if (this.heldNow) {
      this.heldNow = false;
      ingestLeaseHeld.set(0);
      await this.opts.onReleased(true).catch((err) => log.error({ err }, "ingest: stopping failed"));
      log.info({ replica: this.opts.replica }, "ingest lease released");
    }
    const client = this.client;
    this.client = null;
    // Ending the session releases the lock.
    await client?.end();
  }
}
