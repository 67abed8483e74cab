/**
 * The market's notion of now. Delays are measured on it: for a live feed it is wall time; for the
 * mock feed at `--speed` it is the simulated time, i.e. the ingest watermark.
 */
export interface MarketClock {
  now(): Date;
}

/** Wall time: right for a live feed, and the default until ingest supplies a watermark-backed clock. */
export const wallClock: MarketClock = { now: () => new Date() };

/**
 * The market's now as observed from outside the ingest (a replica that does not hold the ingest lease):
 * the newest market time reported, e.g. from the committed checkpoint or from window events on the bus.
 * Never goes back; wall time until something is observed.
 */
export class ObservedClock implements MarketClock {
  private latestMs: number | null = null;

  /** Reports a market time known to have been reached (ms since the epoch). */
  observe(ms: number): void {
    if (this.latestMs === null || ms > this.latestMs) this.latestMs = ms;
  }

  /** The newest market time observed, or null before any. */
  get latest(): Date | null {
    return this.latestMs === null ? null : new Date(this.latestMs);
  }

  now(): Date {
    return this.latestMs === null ? new Date() : new Date(this.latestMs);
  }
}
