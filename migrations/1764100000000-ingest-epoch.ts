import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * The writer's identity on each ingest stream: whoever starts ingesting a stream claims a new epoch on
 * its checkpoint row, and every batch commits only while the row still carries its own. A replica that
 * lost the ingest lease but still has a batch in flight then fails at its checkpoint and rolls back,
 * even when the unique key would have dropped its trades without a word.
 */
export class IngestEpoch1764100000000 implements MigrationInterface {
  name = "IngestEpoch1764100000000";

  async up(q: QueryRunner): Promise<void> {
    // A sequence rather than a per-row counter: an epoch is never handed out twice, even to a stream
    // whose row was deleted and made again.
    await q.query(`CREATE SEQUENCE ingest_epochs`);
    // NULL until a writer claims the stream: no batch matches it.
    await q.query(`ALTER TABLE ingest_checkpoints ADD COLUMN epoch bigint`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE ingest_checkpoints DROP COLUMN epoch`);
    await q.query(`DROP SEQUENCE ingest_epochs`);
  }
}
