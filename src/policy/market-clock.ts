/**
 * The market's notion of now. Delays are measured on it: for a live feed it is wall time; for the
 * mock feed at `--speed` it is the simulated time, i.e. the ingest watermark.
 */
export interface MarketClock {
  now(): Date;
}

/** Wall time: right for a live feed, and the default until ingest supplies a watermark-backed clock. */
export const wallClock: MarketClock = { now: () => new Date() };
