import type { DataSource, EntityManager } from "typeorm";
import { paneOf } from "../core/market";

const PANE_COLUMNS = `(symbol, bucket, n, px_sum, pv_sum, volume, high, low,
       open_px, open_ts, open_seq, close_px, close_ts, close_seq)`;

// A pane's partial aggregate merged into what is stored: sums add up, extremes widen, and open/close
// move only to a trade earlier/later by (event time, seq).
const MERGE_ON_CONFLICT = `
    ON CONFLICT (symbol, bucket) DO UPDATE SET
      n = p.n + excluded.n,
      px_sum = p.px_sum + excluded.px_sum,
      pv_sum = p.pv_sum + excluded.pv_sum,
      volume = p.volume + excluded.volume,
      high = greatest(p.high, excluded.high),
      low = least(p.low, excluded.low),
      open_px = CASE WHEN (excluded.open_ts, excluded.open_seq) < (p.open_ts, p.open_seq) THEN excluded.open_px ELSE p.open_px END,
      open_seq = CASE WHEN (excluded.open_ts, excluded.open_seq) < (p.open_ts, p.open_seq) THEN excluded.open_seq ELSE p.open_seq END,
      open_ts = least(p.open_ts, excluded.open_ts),
      close_px = CASE WHEN (excluded.close_ts, excluded.close_seq) > (p.close_ts, p.close_seq) THEN excluded.close_px ELSE p.close_px END,
      close_seq = CASE WHEN (excluded.close_ts, excluded.close_seq) > (p.close_ts, p.close_seq) THEN excluded.close_seq ELSE p.close_seq END,
      close_ts = greatest(p.close_ts, excluded.close_ts)`;

/**
 * Merges trades into `panes_10s`. `source` is a relation (a CTE name or a sub-select) with columns
 * symbol, event_time, seq, price, size, holding trades not merged before — e.g. the RETURNING of the
 * insert into quotes, so that a duplicate that lost the race on the unique key is never counted twice.
 */
export function mergePanesSql(source: string): string {
  return `INSERT INTO panes_10s AS p ${PANE_COLUMNS}
    SELECT symbol, bucket, n, px_sum, pv_sum, volume, high, low,
           o[3], open_ts, o[2]::int8, c[3], close_ts, c[2]::int8
    FROM (
      -- First and last trade by (event time, seq) in one pass: min/max over [µs since epoch, seq, price]
      -- (exact as float8 up to 2^53) instead of sorting each pane's trades per aggregate.
      SELECT symbol, date_bin('10 seconds', event_time, timestamptz 'epoch') AS bucket,
             count(*) AS n, sum(price) AS px_sum, sum(price * size) AS pv_sum, sum(size) AS volume,
             max(price) AS high, min(price) AS low,
             min(ARRAY[(extract(epoch FROM event_time) * 1000000)::float8, seq::float8, price]) AS o,
             max(ARRAY[(extract(epoch FROM event_time) * 1000000)::float8, seq::float8, price]) AS c,
             min(event_time) AS open_ts, max(event_time) AS close_ts
      FROM ${source} AS src
      GROUP BY 1, 2
    ) AS agg
    ${MERGE_ON_CONFLICT}`;
}

/** Partial aggregates of some trades, one per (symbol, pane), column by column (`PaneSums.add`). */
export class PaneSums {
  readonly symbol: string[] = [];
  /** Pane start, epoch ms. */
  readonly bucket: number[] = [];
  readonly n: number[] = [];
  readonly pxSum: number[] = [];
  readonly pvSum: number[] = [];
  readonly volume: number[] = [];
  readonly high: number[] = [];
  readonly low: number[] = [];
  readonly openPx: number[] = [];
  /** Epoch µs of the open trade. */
  readonly openUs: number[] = [];
  readonly openSeq: number[] = [];
  readonly closePx: number[] = [];
  readonly closeUs: number[] = [];
  readonly closeSeq: number[] = [];
  private readonly index = new Map<string, number>();

  /**
   * Adds one trade. Its event time is in epoch µs, exactly as stored (`quotes.event_time` keeps
   * microseconds), so that first and last by (event time, seq) agree with the SQL merge.
   */
  add(symbol: string, timeUs: number, seq: number, price: number, size: number): void {
    const bucket = paneOf(Math.floor(timeUs / 1000));
    const key = `${symbol} ${bucket}`;
    const k = this.index.get(key);
    if (k === undefined) {
      this.index.set(key, this.symbol.length);
      this.symbol.push(symbol);
      this.bucket.push(bucket);
      this.n.push(1);
      this.pxSum.push(price);
      this.pvSum.push(price * size);
      this.volume.push(size);
      this.high.push(price);
      this.low.push(price);
      this.openPx.push(price);
      this.openUs.push(timeUs);
      this.openSeq.push(seq);
      this.closePx.push(price);
      this.closeUs.push(timeUs);
      this.closeSeq.push(seq);
      return;
    }
    this.n[k]++;
    this.pxSum[k] += price;
    this.pvSum[k] += price * size;
    this.volume[k] += size;
    if (price > this.high[k]) this.high[k] = price;
    if (price < this.low[k]) this.low[k] = price;
    if (timeUs < this.openUs[k] || (timeUs === this.openUs[k] && seq < this.openSeq[k])) {
      this.openPx[k] = price;
      this.openUs[k] = timeUs;
      this.openSeq[k] = seq;
    }
    if (timeUs > this.closeUs[k] || (timeUs === this.closeUs[k] && seq > this.closeSeq[k])) {
      this.closePx[k] = price;
      this.closeUs[k] = timeUs;
      this.closeSeq[k] = seq;
    }
  }

  /** Parameters of `UPSERT_PANES_SQL`. */
  params(): unknown[] {
    return [
      this.symbol,
      this.bucket,
      this.n,
      this.pxSum,
      this.pvSum,
      this.volume,
      this.high,
      this.low,
      this.openPx,
      this.openUs,
      this.openSeq,
      this.closePx,
      this.closeUs,
      this.closeSeq,
    ];
  }
}

const at = (n: string, unit: "millisecond" | "microsecond") =>
  `timestamptz 'epoch' + ${n} * interval '1 ${unit}'`;

/** Merges the partial aggregates of a `PaneSums` (its `params()`) into `panes_10s`. */
export const UPSERT_PANES_SQL = `INSERT INTO panes_10s AS p ${PANE_COLUMNS}
    SELECT s, ${at("b", "millisecond")}, n, ps, vs, v, h, l, op, ${at("ot", "microsecond")}, os, cp, ${at("ct", "microsecond")}, cs
    FROM unnest($1::text[], $2::int8[], $3::int4[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
                $8::float8[], $9::float8[], $10::int8[], $11::int8[], $12::float8[], $13::int8[], $14::int8[])
         AS u(s, b, n, ps, vs, v, h, l, op, ot, os, cp, ct, cs)
    ${MERGE_ON_CONFLICT}`;

/** A 10-second partial aggregate as the window engine reads it (times in epoch ms, seqs as numbers). */
export interface PaneRow {
  symbol: string;
  bucket: Date;
  n: number;
  pxSum: number;
  pvSum: number;
  volume: number;
  high: number;
  low: number;
  openPx: number;
  openTs: number;
  openSeq: number;
  closePx: number;
  closeTs: number;
  closeSeq: number;
}

const PANE_SELECT = `SELECT symbol, bucket, n, px_sum AS "pxSum", pv_sum AS "pvSum", volume, high, low,
  open_px AS "openPx", (extract(epoch FROM open_ts) * 1000)::float8 AS "openTs", open_seq::float8 AS "openSeq",
  close_px AS "closePx", (extract(epoch FROM close_ts) * 1000)::float8 AS "closeTs", close_seq::float8 AS "closeSeq"
  FROM panes_10s`;

/** The panes the window engine merges windows from, and the rebuild of panes from stored quotes. */
export class PanesRepo {
  constructor(private readonly ds: DataSource) {}

  /** The first pane ever stored (null before any trade). */
  async first(): Promise<Date | null> {
    const [{ first }] = await this.ds.query<{ first: Date | null }[]>(
      `SELECT min(bucket) AS first FROM panes_10s`,
    );
    return first;
  }

  /** Panes of buckets in [from, to). */
  range(from: Date, to: Date): Promise<PaneRow[]> {
    return this.ds.query(`${PANE_SELECT} WHERE bucket >= $1 AND bucket < $2`, [from, to]);
  }

  /** Panes of these buckets. */
  buckets(buckets: Date[]): Promise<PaneRow[]> {
    return this.ds.query(`${PANE_SELECT} WHERE bucket = ANY($1::timestamptz[])`, [buckets]);
  }

  /** Recomputes the panes of buckets in [from, to) from stored quotes, in one transaction; returns how many. */
  rebuild(from: Date, to: Date): Promise<number> {
    return this.ds.transaction(async (tx: EntityManager) => {
      await tx.query(`DELETE FROM panes_10s WHERE bucket >= $1 AND bucket < $2`, [from, to]);
      const merged: unknown[] = await tx.query(
        `${mergePanesSql(`(SELECT symbol, event_time, seq, price, size FROM quotes WHERE event_time >= $1 AND event_time < $2)`)} RETURNING 1`,
        [from, to],
      );
      return merged.length;
    });
  }
}
