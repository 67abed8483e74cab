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

  async read(stream: string): Promise<Checkpoint | null> {
    return this.ds.getRepository(IngestCheckpointEntity).findOne({
      select: { lastIds: true, watermark: true },
      where: { stream },
    });
  }

  /**
   * Starts the stream's checkpoint over, as long as `epoch` still holds it (false when another writer
   * claimed it since): for a feed that numbers its trades anew with every run.
   */
  async reset(stream: string, epoch: string): Promise<boolean> {
    const { affected } = await this.ds
      .getRepository(IngestCheckpointEntity)
      .update({ stream, epoch }, { lastIds: {}, watermark: null, updatedAt: () => "now()" });
    return affected === 1;
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
