import type { Pool } from "pg";
import type { DataSource } from "typeorm";
import { dbQueries } from "../metrics";

/** The small interface the read path needs of Postgres. */
export interface Sql {
  query<T>(text: string, params?: unknown[]): Promise<T[]>;
}

/**
 * Hot read statements go straight to the pg pool that TypeORM's Postgres driver owns (same connections,
 * same settings), skipping a query runner per statement. Counted like every other statement.
 */
export function sqlOf(ds: DataSource): Sql {
  const pool = (ds.driver as unknown as { master: Pool }).master;
  return {
    async query<T>(text: string, params?: unknown[]) {
      dbQueries.inc();
      return (await pool.query(text, params)).rows as T[];
    },
  };
}
