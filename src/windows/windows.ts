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
export type { MoverRow, WindowRow } from "../db/windows.repo";
