import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Quarantined input holds trades and quotes: principals without REALTIME are served it delayed, on the
 * market clock, which is stamped on each row as it is received. Rows from before are not served delayed.
 */
export class QuarantineMarketTime1764000100000 implements MigrationInterface {
  name = "QuarantineMarketTime1764000100000";

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE quarantine ADD COLUMN market_at timestamptz`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE quarantine DROP COLUMN market_at`);
  }
}
