import type { RankedRow } from "./windows.repo";
import { RANK_COLUMN, type MoverRow, type RankBy, type WindowRow, type WindowSize } from "./windows";

/** A stored window as served: marked delayed when the caller's view is delayed. */
export type ServedWindow = WindowRow & { delayed: boolean };

/** One symbol's place in a window's ranking. */
export interface RankedEntry {
  /** 1-based. */
  rank: number;
  symbol: string;
  /** The ranked measure's value. */
  value: number;
  aggregate: ServedWindow;
}

/** The top symbols of one window by a measure, ties by symbol ascending. */
export interface Ranking {
  size: WindowSize;
  by: RankBy;
  windowStart: Date;
  windowEnd: Date;
  entries: RankedEntry[];
  delayed: boolean;
}

/** A gainer or loser: change from the reference price to the price. */
export interface Mover {
  rank: number;
  symbol: string;
  price: number;
  referencePrice: number;
  change: number;
  /** 100·(price − referencePrice)/referencePrice. */
  changePercent: number;
  volume: number;
}

/** Marks a stored window as served (in place: rows are read for one response). */
export function served(row: WindowRow, delayed: boolean): ServedWindow {
  const w = row as ServedWindow;
  w.delayed = delayed;
  return w;
}

/** Groups ranked rows (ordered by window, then rank) into one ranking per window. */
export function rankingsOf(rows: RankedRow[], size: WindowSize, by: RankBy, delayed: boolean): Ranking[] {
  const out: Ranking[] = [];
  const col = RANK_COLUMN[by] as keyof WindowRow;
  for (const row of rows) {
    let r = out.at(-1);
    if (!r || r.windowEnd.getTime() !== row.windowEnd.getTime()) {
      out.push(
        (r = { size, by, windowStart: row.windowStart, windowEnd: row.windowEnd, entries: [], delayed }),
      );
    }
    r.entries.push({
      rank: Number(row.rank),
      symbol: row.symbol,
      value: row[col] as number,
      aggregate: served(row, delayed),
    });
  }
  return out;
}

/**
 * The biggest gainers and losers among `rows` (each symbol's price against its reference price), at most
 * `limit` of each, by percent change, ties by symbol ascending.
 */
export function moversOf(rows: MoverRow[], limit: number): { gainers: Mover[]; losers: Mover[] } {
  const movers = rows
    .filter((r) => r.referencePrice > 0)
    .map((r) => ({
      rank: 0,
      symbol: r.symbol,
      price: r.price,
      referencePrice: r.referencePrice,
      change: r.price - r.referencePrice,
      changePercent: (100 * (r.price - r.referencePrice)) / r.referencePrice,
      volume: Number(r.volume),
    }));
  const bySymbol = (a: Mover, b: Mover) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0);
  const ranked = (list: Mover[]) => list.slice(0, limit).map((m, i) => ({ ...m, rank: i + 1 }));
  return {
    gainers: ranked(
      movers.filter((m) => m.change > 0).sort((a, b) => b.changePercent - a.changePercent || bySymbol(a, b)),
    ),
    losers: ranked(
      movers.filter((m) => m.change < 0).sort((a, b) => a.changePercent - b.changePercent || bySymbol(a, b)),
    ),
  };
}
