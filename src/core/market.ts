/** The market vocabulary every room shares: window sizes and periods, measures, mover bases. */

/** Hopping window sizes; every window hops by one 10-second pane. */
export enum WindowSize {
  ONE_MINUTE = "ONE_MINUTE",
  FIVE_MINUTES = "FIVE_MINUTES",
  FIFTEEN_MINUTES = "FIFTEEN_MINUTES",
}

/** Window length in milliseconds. */
export const WINDOW_MS: Record<WindowSize, number> = {
  [WindowSize.ONE_MINUTE]: 60_000,
  [WindowSize.FIVE_MINUTES]: 300_000,
  [WindowSize.FIFTEEN_MINUTES]: 900_000,
};

export const LONGEST_WINDOW_MS = WINDOW_MS[WindowSize.FIFTEEN_MINUTES];

/** Tumbling period of the "top price stock": FIVE_MINUTES windows whose end is a multiple of it. */
export const TOP_PRICE_PERIOD_MS = 300_000;

/** The watermark trails the newest accepted event time by this much. */
export const WATERMARK_DELAY_MS = 2000;

/** A window becomes final this long after the watermark passes its end (allowed lateness). */
export const ALLOWED_LATENESS_MS = 30_000;

/** What a ranking orders windows by (highest first, ties by symbol ascending). */
export enum RankBy {
  MEAN = "MEAN",
  VWAP = "VWAP",
  HIGH = "HIGH",
  CLOSE = "CLOSE",
}

/** Column of window_aggregates a measure reads. */
export const RANK_COLUMN: Record<RankBy, string> = {
  [RankBy.MEAN]: "mean",
  [RankBy.VWAP]: "vwap",
  [RankBy.HIGH]: "high",
  [RankBy.CLOSE]: "close",
};

export enum MoverBasis {
  /** Change from the window's open to its close. */
  WINDOW = "WINDOW",
  /** Change from the previous session's (UTC day's) close to the latest price. */
  SESSION = "SESSION",
}

/** Pane width: windows hop by it and are merged from it. */
export const PANE_MS = 10_000;

/** Start of the 10-second pane holding `t` (panes are aligned to the Unix epoch). */
export function paneOf(t: number): number {
  return Math.floor(t / PANE_MS) * PANE_MS;
}
