import type { Sql } from "./sql";

/** Row counts of the tables whose lists the API returns whole (the cost limit counts them). */
export async function readListSizes(
  sql: Sql,
): Promise<{ instruments: number; grants: number; requests: number }> {
  const [row] = await sql.query<{ instruments: number; grants: number; requests: number }>(
    `SELECT (SELECT count(*) FROM instruments)::int AS instruments, (SELECT count(*) FROM grants)::int AS grants,
            (SELECT count(*) FROM access_requests)::int AS requests`,
  );
  return row;
}
