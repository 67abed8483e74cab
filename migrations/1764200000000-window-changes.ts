import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * Windows in the order they were written, for windowAggregates streams that resume after a cursor: one
 * index range from the cursor on, however long the table has grown.
 */
export class WindowChanges1764200000000 implements MigrationInterface {
  name = "WindowChanges1764200000000";

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE INDEX window_aggregates_changes_idx ON window_aggregates (size, updated_at, window_end, symbol)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX window_aggregates_changes_idx`);
  }
}
