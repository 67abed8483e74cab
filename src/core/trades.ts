/**
 * The new trades of one committed batch, column by column (row k is element k of every array): the
 * writer hands over the columns it already holds, so nothing is re-read or copied row by row.
 */
export interface CommittedTrades {
  /** `quotes.id` of each row. */
  id: string[];
  symbol: string[];
  /** The feed's RFC 3339 event time. */
  time: string[];
  /** `quotes.seq` (the feed's id plus the symbol's offset). */
  seq: number[];
  price: number[];
  size: number[];
  bid: (number | null)[];
  bidSize: (number | null)[];
  ask: (number | null)[];
  askSize: (number | null)[];
  exchange: string[];
  source: string[];
  /** Receive time, epoch ms. */
  received: number[];
}

/** A batch's trades before they have ids. */
export type TradeColumns = Omit<CommittedTrades, "id">;
const COLUMNS = [
  "symbol",
  "time",
  "seq",
  "price",
  "size",
  "bid",
  "bidSize",
  "ask",
  "askSize",
  "exchange",
  "source",
  "received",
] as const satisfies readonly (keyof TradeColumns)[];

export function rowCount(t: CommittedTrades): number {
  return t.id.length;
}

/**
 * The rows of `batch` the insert stored, given the (symbol, seq, id) triples it returned; rows that lost
 * the unique key (duplicates) are left out.
 */
export function committedOf(
  batch: TradeColumns,
  stored: { symbols: string[]; seqs: string[]; ids: string[] },
): CommittedTrades {
  const idOf = new Map<string, string>();
  for (let k = 0; k < stored.ids.length; k++)
    idOf.set(`${stored.symbols[k]} ${stored.seqs[k]}`, stored.ids[k]);
  const ids = batch.symbol.map((s, k) => idOf.get(`${s} ${batch.seq[k]}`));
  if (ids.every((id): id is string => id !== undefined)) return allCommitted(batch, ids);
  const keep = ids.flatMap((id, k) => (id === undefined ? [] : [k]));
  const out = { id: keep.map((k) => ids[k]!) } as CommittedTrades;
  for (const c of COLUMNS) (out[c] as unknown[]) = keep.map((k) => batch[c][k]);
  return out;
}

/** Every row of `batch`, all stored, with the ids they were stored under. */
export function allCommitted(batch: TradeColumns, ids: string[]): CommittedTrades {
  const columns = Object.fromEntries(COLUMNS.map((c) => [c, batch[c]])) as unknown as TradeColumns;
  return { ...columns, id: ids };
}

/** Rows [from, to) of `t`. */
export function sliceTrades(t: CommittedTrades, from: number, to: number): CommittedTrades {
  const out = { id: t.id.slice(from, to) } as CommittedTrades;
  for (const c of COLUMNS) (out[c] as unknown[]) = t[c].slice(from, to);
  return out;
}

/** `t` in pieces of at most `max` rows (a piece must fit one Postgres NOTIFY on the shared bus). */
export function chunksOf(t: CommittedTrades, max: number): CommittedTrades[] {
  const n = rowCount(t);
  if (n <= max) return n ? [t] : [];
  const out: CommittedTrades[] = [];
  for (let k = 0; k < n; k += max) out.push(sliceTrades(t, k, Math.min(n, k + max)));
  return out;
}

/**
 * No trades: published for a commit whose new rows were not collected (nobody listened for ticks as its
 * batch was cut), so that a stream following the stored rows knows to read them.
 */
export function noTrades(): CommittedTrades {
  return {
    id: [],
    symbol: [],
    time: [],
    seq: [],
    price: [],
    size: [],
    bid: [],
    bidSize: [],
    ask: [],
    askSize: [],
    exchange: [],
    source: [],
    received: [],
  };
}
