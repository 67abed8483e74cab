import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * The access log's chain becomes keyed (HMAC under a secret kept outside the database), and an entry may
 * stand for several aggregated refusals. Entries written before keep their sha256 chain (keyed false).
 */
export class AccessLogKeyed1764000000000 implements MigrationInterface {
  name = "AccessLogKeyed1764000000000";

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE access_log ADD COLUMN occurrences integer`);
    await q.query(`ALTER TABLE access_log ADD COLUMN keyed boolean NOT NULL DEFAULT false`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE access_log DROP COLUMN keyed`);
    await q.query(`ALTER TABLE access_log DROP COLUMN occurrences`);
  }
}
