import { MigrationInterface, QueryRunner } from "typeorm";

/** Rejected feed input, kept verbatim, and the ingest loop's resume points. */
export class Ingest1763750000000 implements MigrationInterface {
  name = "Ingest1763750000000";

  async up(q: QueryRunner): Promise<void> {
    // raw is the text as it arrived (a frame or one message of it), so a bad input can be replayed or
    // reported to the provider exactly; nothing about it is trusted, hence text and not jsonb.
    await q.query(`
      CREATE TABLE quarantine (
        id          bigserial PRIMARY KEY,
        received_at timestamptz NOT NULL DEFAULT now(),
        raw         text NOT NULL,
        reason      text NOT NULL,
        detail      text
      )`);
    // Keyset pages per reason (newest first) and counts by reason over a time range.
    await q.query(`CREATE INDEX quarantine_reason_idx ON quarantine (reason, id)`);
    await q.query(`CREATE INDEX quarantine_received_idx ON quarantine (received_at)`);
    // last_ids maps symbol → the highest trade id below which every id is stored or quarantined: a
    // restart backfills from there. Written in the same transaction as the batch it describes.
    await q.query(`
      CREATE TABLE ingest_checkpoints (
        stream     text PRIMARY KEY,
        last_ids   jsonb NOT NULL DEFAULT '{}',
        watermark  timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE ingest_checkpoints`);
    await q.query(`DROP TABLE quarantine`);
  }
}
