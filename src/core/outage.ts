import { log } from "../log";

/**
 * Logs an outage of something polled (the database, for the lease and the market follower) once: a
 * warning at the first failure, debug while it lasts, and one line when it is over. A 30-second Postgres
 * restart is then two lines, not a hundred.
 */
export class OutageLog {
  private since: number | null = null;

  constructor(private readonly what: string) {}

  /** A poll failed. */
  failed(err: unknown, fields: Record<string, unknown> = {}): void {
    const message = err instanceof Error ? err.message : String(err);
    if (this.since === null) {
      this.since = Date.now();
      log.warn({ ...fields, err: message }, `${this.what}: database unreachable`);
    } else log.debug({ ...fields, err: message }, `${this.what}: database still unreachable`);
  }

  /** A poll succeeded: ends the outage, if there was one. */
  ok(): void {
    if (this.since === null) return;
    log.info({ downMs: Date.now() - this.since }, `${this.what}: database reachable again`);
    this.since = null;
  }
}
