import "reflect-metadata";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "pg";
import { createDataSource, migrate } from "../../src/db/data-source";
import { startEmbeddedPostgres } from "../../src/db/embedded";
import { withDatabase } from "../../src/db/naming";
import { TEMPLATE_ENV, ADMIN_ENV, testDbPrefix } from "./env";

/**
 * Once per run: a Postgres (DATABASE_URL's server, else an embedded one in a temp dir) and a template
 * database with every migration applied. Each test file clones its own database from it.
 */
export default async function globalSetup(): Promise<void> {
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const pg = await startEmbeddedPostgres(mkdtempSync(join(tmpdir(), "tickgraph-test-")), {
      persistent: false,
    });
    adminUrl = pg.url;
    (globalThis as { __tickgraphPg?: typeof pg }).__tickgraphPg = pg;
  }
  const template = `${testDbPrefix()}tpl`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${template}"`);
  await admin.query(`CREATE DATABASE "${template}"`);
  await admin.end();

  const ds = createDataSource({
    url: withDatabase(adminUrl, template),
    statementTimeoutMs: 30_000,
    poolSize: 2,
  });
  await ds.initialize();
  await migrate(ds);
  await ds.destroy();

  process.env[ADMIN_ENV] = adminUrl;
  process.env[TEMPLATE_ENV] = template;
}
