/**
 * The market's notion of now. Delays are measured on it: for a live feed it is wall time; for the
 * mock feed at `--speed` it is the simulated time, i.e. the ingest watermark.
 */
export interface MarketClock {
  now(): Date;
}

/** Wall time: right for a live feed's own ingest (see `Ingest.clock` for the watermark-backed one). */
export const wallClock: MarketClock = { now: () => new Date() };

/** The market's now before anything of it is known: the epoch, so that no delayed view serves anything. */
const UNKNOWN = new Date(0);

/**
 * The market's now as observed from outside the ingest (a replica that does not hold the ingest lease,
 * or runs without one): the newest market time reported, from the newest stored trade, the committed
 * checkpoint or window events on the bus, each a time the market is known to have reached. Never goes
 * back. Until something is observed it answers the epoch: a replica that cannot prove data old enough
 * serves none of it delayed (fail closed), however far wall time is ahead of the market.
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
    return this.latestMs === null ? UNKNOWN : new Date(this.latestMs);
  }
}
