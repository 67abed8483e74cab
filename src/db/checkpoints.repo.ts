import type { DataSource } from "typeorm";
import { IngestCheckpointEntity } from "../entities";

/**
 * Makes the caller the stream's only writer ($1: the stream): a new epoch on its checkpoint row (made
 * when missing), which each batch of the writer holding it checks in its own transaction. A batch an
 * earlier writer still has in flight either commits before the claim, and so before anything read
 * after it, or fails at its checkpoint and rolls back. Returns `epoch` (a bigint, as text).
 */
export const CLAIM_STREAM = `
  INSERT INTO ingest_checkpoints AS c (stream, epoch) VALUES ($1, nextval('ingest_epochs'))
  ON CONFLICT (stream) DO UPDATE SET epoch = excluded.epoch, updated_at = now()
  RETURNING c.epoch::text AS epoch`;

/** Where a stream's ingest resumes. */
export interface Checkpoint {
  /** Symbol → highest trade id below which every id is stored or quarantined. */
  lastIds: Record<string, number>;
  watermark: Date | null;
}

/** How far the market is known to have come, as any replica can read it from the database. */
export interface StoredProgress {
  /** The committed watermark of one stream. */
  watermark: Date | null;
  /** The newest watermark of any stream: they all follow the one market. */
  latestWatermark: Date | null;
  /** The newest stored trade's event time. */
  newestTrade: Date | null;
}

/** Where the stored market stands: what a market started again on this database continues from. */
export interface StoredMarket {
  /** The newest stored trade's event time; null on a database with no trades. */
  newestTrade: Date | null;
  /** Each instrument's price at its highest stored `seq` (its last trade), for those that traded. */
  lastPrices: Record<string, number>;
}

/** The ingest checkpoints: who writes each stream (its epoch) and where it resumes. */
export class CheckpointsRepo {
  constructor(private readonly ds: DataSource) {}

  /**
   * Claims the stream (CLAIM_STREAM) and returns the epoch to hand its writer. The ingest lease claims on
   * the session that holds its lock, so that a replica whose lock is gone cannot claim; this is for a
   * writer without a lease.
   */
  async claim(stream: string): Promise<string> {
    const [row] = await this.ds.query<{ epoch: string }[]>(CLAIM_STREAM, [stream]);
    return row.epoch;
  }

  /**
   * Whether the transaction `tx` names (a part of one of the stream's batches) was applied: its token is
   * still the last its part committed (see IngestWrites). Ask before that part commits anything else.
   */
  async applied(stream: string, tx: { part: number; token: string }): Promise<boolean> {
    const rows = await this.ds.query<{ token: string | null }[]>(
      `SELECT commits ->> $2 AS token FROM ingest_checkpoints WHERE stream = $1`,
      [stream, String(tx.part)],
    );
    return rows[0]?.token === tx.token;
  }

  async read(stream: string): Promise<Checkpoint | null> {
    return this.ds.getRepository(IngestCheckpointEntity).findOne({
      select: { lastIds: true, watermark: true },
      where: { stream },
    });
  }

  /**
   * Starts the stream's ids over, as long as `epoch` still holds it (false when another writer claimed it
   * since): for a feed that numbers its trades anew with every run. The watermark stays: windows already
   * final stay final. Returns the checkpoint as it is now, or null when the stream is no longer this
   * writer's.
   */
  async reset(stream: string, epoch: string): Promise<Checkpoint | null> {
    const rows: { lastIds: Record<string, number>; watermark: Date | null }[] = await this.ds.query(
      `UPDATE ingest_checkpoints SET last_ids = '{}', updated_at = now()
       WHERE stream = $1 AND epoch = $2
       RETURNING last_ids AS "lastIds", watermark`,
      [stream, epoch],
    );
    return rows[0] ?? null;
  }

  /**
   * The stored market's last prices and newest trade time. Each symbol's last trade is found on the
   * (symbol, seq) key and the newest time on the event-time index, so it stays cheap on a large table.
   */
  async storedMarket(): Promise<StoredMarket> {
    const [row]: { newestTrade: Date | null; lastPrices: Record<string, number> }[] = await this.ds.query(
      `SELECT (SELECT max(event_time) FROM quotes) AS "newestTrade",
              (SELECT coalesce(jsonb_object_agg(i.symbol, l.price), '{}')
               FROM instruments i
               CROSS JOIN LATERAL (SELECT price FROM quotes q WHERE q.symbol = i.symbol
                                   ORDER BY seq DESC LIMIT 1) l) AS "lastPrices"`,
    );
    return row;
  }

  /** The highest stored `quotes.seq` of each symbol that has one. */
  async highestSeqs(symbols: readonly string[]): Promise<Map<string, number>> {
    const rows: { symbol: string; max: string | null }[] = await this.ds.query(
      `SELECT s AS symbol, (SELECT max(seq) FROM quotes q WHERE q.symbol = s)::text AS max
       FROM unnest($1::text[]) AS s`,
      [symbols],
    );
    return new Map(rows.flatMap((r) => (r.max === null ? [] : [[r.symbol, Number(r.max)]])));
  }

  async progress(stream: string): Promise<StoredProgress> {
    const [row]: StoredProgress[] = await this.ds.query(
      `SELECT (SELECT watermark FROM ingest_checkpoints WHERE stream = $1) AS watermark,
              (SELECT max(watermark) FROM ingest_checkpoints) AS "latestWatermark",
              (SELECT max(event_time) FROM quotes) AS "newestTrade"`,
      [stream],
    );
    return row;
  }
}
