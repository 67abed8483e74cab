import { Client } from "pg";
import type { RunningPostgres } from "../../src/db/embedded";
import { ADMIN_ENV, testDbPrefix } from "./env";

export default async function globalTeardown(): Promise<void> {
  const pg = (globalThis as { __tickgraphPg?: RunningPostgres }).__tickgraphPg;
  if (pg) return pg.stop(); // a throwaway cluster: its databases go with it
  const admin = new Client({ connectionString: process.env[ADMIN_ENV] });
  await admin.connect();
  const { rows } = await admin.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
    [testDbPrefix()],
  );
  for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  await admin.end();
}
