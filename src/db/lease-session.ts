import { Client } from "pg";
import { CLAIM_STREAM } from "./checkpoints.repo";

/** application_name holds at most 63 bytes. */
const MAX_APPLICATION_NAME = 63;
const APPLICATION_PREFIX = "tickgraph-lease/";

export interface LeaseSessionOptions {
  url: string;
  /** This replica's name, shown to the others as the holder (in the session's application_name). */
  replica: string;
  /** How often the holder checks its session, ms: sets the query timeout and the server's idle timeout. */
  retryMs: number;
  /** Called once when the connection fails or ends. */
  onLost: (err?: Error) => void;
}

/**
 * The dedicated session an ingest lease holds its advisory lock on: the lock lives exactly as long as
 * the session, so every statement about it runs here.
 */
export class LeaseSession {
  private constructor(private readonly client: Client) {}

  static async open(opts: LeaseSessionOptions): Promise<LeaseSession> {
    const client = new Client({
      connectionString: opts.url,
      application_name: (APPLICATION_PREFIX + opts.replica).slice(0, MAX_APPLICATION_NAME),
      keepAlive: true,
      // A holder whose health check hangs (network gone) stops ingest rather than wait indefinitely, and
      // a connection attempt that gets no answer (a server between stop and start) is tried again.
      query_timeout: Math.max(5000, opts.retryMs * 3),
      connectionTimeoutMillis: Math.max(2000, opts.retryMs * 3),
    });
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost) return;
      lost = true;
      opts.onLost(err);
    };
    client.on("error", onLost);
    client.on("end", () => onLost());
    await client.connect();
    // The server, too, must notice a holder that is gone without closing its socket (network lost,
    // process frozen) and end its session, or the lock would stay held. The holder queries every
    // retryMs, so an idle session means it is gone. Settings this server does not know are skipped.
    const idleMs = Math.max(10_000, opts.retryMs * 10);
    for (const [name, value] of [
      ["idle_session_timeout", `${idleMs}ms`],
      ["tcp_keepalives_idle", "5"],
      ["tcp_keepalives_interval", "2"],
      ["tcp_keepalives_count", "3"],
    ])
      await client.query("SELECT set_config($1, $2, false)", [name, value]).catch(() => undefined);
    return new LeaseSession(client);
  }

  /** Fails when the session is gone. */
  async ping(): Promise<void> {
    await this.client.query("SELECT 1");
  }

  /** Takes the session-level advisory lock `key` if nobody holds it. */
  async tryLock(key: [number, number]): Promise<boolean> {
    const { rows } = await this.client.query<{ ok: boolean }>(
      "SELECT pg_try_advisory_lock($1, $2) AS ok",
      key,
    );
    return rows[0].ok;
  }

  /** Claims the stream's next epoch on this session (see CLAIM_STREAM). */
  async claim(stream: string): Promise<string> {
    const { rows } = await this.client.query<{ epoch: string }>(CLAIM_STREAM, [stream]);
    return rows[0].epoch;
  }

  /** The replica named by the application_name of the session holding lock `key`, if visible. */
  async holderOf(key: [number, number]): Promise<string | null> {
    const { rows } = await this.client.query<{ name: string }>(
      `SELECT a.application_name AS name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
         AND l.classid::int8 = $1 AND l.objid::int8 = $2
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      key,
    );
    const name = rows[0]?.name;
    if (name === undefined) return null;
    return name.startsWith(APPLICATION_PREFIX) ? name.slice(APPLICATION_PREFIX.length) : name;
  }

  /** Ends the session, which releases its locks. */
  async end(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}
