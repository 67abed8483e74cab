import type { WindowSize } from "../core/market";

// The vocabulary of windows lives in core, below every room; the domain and the API read it from here too.
export {
  ALLOWED_LATENESS_MS,
  LONGEST_WINDOW_MS,
  MoverBasis,
  RANK_COLUMN,
  RankBy,
  TOP_PRICE_PERIOD_MS,
  WINDOW_MS,
  WindowSize,
} from "../core/market";

/** One stored window aggregate. */
export interface WindowRow {
  symbol: string;
  size: WindowSize;
  windowStart: Date;
  windowEnd: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  mean: number;
  vwap: number | null;
  volume: number;
  tickCount: number;
  revision: number;
  final: boolean;
}

export interface MoverRow {
  symbol: string;
  price: number;
  referencePrice: number;
  volume: number;
}
