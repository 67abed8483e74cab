import { randomBytes } from "node:crypto";
import { Client } from "pg";
import { withDatabase } from "../../src/db/naming";
import { ADMIN_ENV, TEMPLATE_ENV, testDbPrefix } from "./env";

async function admin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: process.env[ADMIN_ENV] });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A fresh database cloned from the migrated template; dropped by `drop()` (or at teardown). */
export async function createTestDatabase(): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `${testDbPrefix()}${randomBytes(4).toString("hex")}`;
  await admin((c) => c.query(`CREATE DATABASE "${name}" TEMPLATE "${process.env[TEMPLATE_ENV]}"`));
  return {
    name,
    url: withDatabase(process.env[ADMIN_ENV]!, name),
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined),
  };
}
