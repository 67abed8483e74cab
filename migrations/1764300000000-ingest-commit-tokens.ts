import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * The last transaction each part of a stream's batches committed: part number → a token its writer
 * made unique (epoch and a count). Written in the same transaction as the part, so that a writer whose
 * connection broke during COMMIT can read, once the database answers again, whether that COMMIT was
 * applied (the token is its own) or not.
 */
export class IngestCommitTokens1764300000000 implements MigrationInterface {
  name = "IngestCommitTokens1764300000000";

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE ingest_checkpoints ADD COLUMN commits jsonb NOT NULL DEFAULT '{}'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE ingest_checkpoints DROP COLUMN commits`);
  }
}
