import type { Pool } from "pg";
import type { DataSource } from "typeorm";
import { PostgresDriver } from "typeorm/driver/postgres/PostgresDriver.js";
import { dbQueries, dbQuerySeconds } from "../metrics";

/** The small interface the read path needs of Postgres. */
export interface Sql {
  query<T>(text: string, params?: unknown[]): Promise<T[]>;
}

/** The pg pool that TypeORM's Postgres driver owns: the one way to reach it. */
export function poolOf(ds: DataSource): Pool {
  const driver = ds.driver;
  if (!(driver instanceof PostgresDriver)) throw new Error("tickgraph runs on Postgres only");
  // The driver declares its pool `any`; with the Postgres driver it is pg's Pool.
  return driver.master as Pool;
}

/** The connection string the data source was made with. */
export function urlOf(ds: DataSource): string {
  const { url } = ds.options as { url?: string };
  if (!url) throw new Error("the data source has no connection URL");
  return url;
}

/**
 * Hot read statements go straight to the pg pool (same connections, same settings as TypeORM's),
 * skipping a query runner per statement. Counted like every other statement.
 */
export function sqlOf(ds: DataSource): Sql {
  const pool = poolOf(ds);
  return {
    async query<T>(text: string, params?: unknown[]) {
      dbQueries.inc();
      const done = dbQuerySeconds.startTimer();
      try {
        return (await pool.query(text, params)).rows as T[];
      } finally {
        done();
      }
    },
  };
}

/**
 * The select list of `keys` (each once, in the order first named), from the SQL each property is read
 * with; every property when `keys` is omitted. A list of none selects a constant, so that rows still
 * come back (a page's count matters even when no column of it is asked for).
 */
export function selectList<K extends string>(columns: Record<K, string>, keys?: Iterable<K>): string {
  const list = keys ? [...new Set(keys)].map((k) => columns[k]) : Object.values<string>(columns);
  return list.length ? list.join(", ") : "1";
}
