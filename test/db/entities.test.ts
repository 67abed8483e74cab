import { Client } from "pg";
import { DataSource } from "typeorm";
import { createDataSource } from "../../src/db/data-source";
import { entities } from "../../src/entities";
import { createTestDatabase } from "../support/database";

// The entities declare every table exactly as the migrations create it: columns, types, nullability,
// defaults, keys, indexes (partial ones included) and constraints. TypeORM's schema builder finds nothing
// to change, and a database built from the entities alone has the same catalog as a migrated one.
let migrated: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  migrated = await createTestDatabase();
});
afterAll(() => migrated.drop());

test("TypeORM's schema builder has no pending query against a migrated database", async () => {
  const ds = createDataSource({ url: migrated.url, statementTimeoutMs: 5000, poolSize: 2 });
  await ds.initialize();
  try {
    const { upQueries } = await ds.driver.createSchemaBuilder().log();
    expect(upQueries.map((q) => q.query)).toEqual([]);
  } finally {
    await ds.destroy();
  }
});

/** Tables, columns, indexes and constraints as Postgres itself prints them (so expressions compare). */
async function catalog(url: string) {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    const q = async (sql: string) => (await c.query(sql)).rows;
    // A numeric default reads `1` when a migration wrote it and `'1'::smallint` when TypeORM did: the same.
    const columns = await q(`SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default
                             FROM information_schema.columns
                             WHERE table_schema = 'public' AND table_name <> 'migrations' ORDER BY 1, 2`);
    for (const col of columns)
      col.column_default =
        col.column_default?.replace(/^'(-?\d+)'::(smallint|integer|bigint)$/, "$1") ?? null;
    return {
      columns,
      indexes: await q(`SELECT tablename, indexname, indexdef FROM pg_indexes
                        WHERE schemaname = 'public' AND tablename <> 'migrations' ORDER BY 1, 2`),
      constraints:
        await q(`SELECT conrelid::regclass::text AS relation, conname, pg_get_constraintdef(oid) AS def
                            FROM pg_constraint WHERE connamespace = 'public'::regnamespace
                              AND conrelid::regclass::text <> 'migrations' ORDER BY 1, 2`),
      types: await q(`SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) AS labels
                      FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY 1 ORDER BY 1`),
    };
  } finally {
    await c.end();
  }
}

test("a database built from the entities alone has the migrated catalog", async () => {
  const built = await createTestDatabase();
  const admin = new Client({ connectionString: built.url });
  await admin.connect();
  // An empty database (the template holds the migrated schema): drop what the clone brought.
  await admin.query(`DROP SCHEMA public CASCADE; CREATE SCHEMA public`);
  await admin.end();
  const ds = new DataSource({ type: "postgres", url: built.url, entities, synchronize: true });
  try {
    await ds.initialize();
    const [fromEntities, fromMigrations] = await Promise.all([catalog(built.url), catalog(migrated.url)]);
    expect(fromEntities).toEqual(fromMigrations);
  } finally {
    if (ds.isInitialized) await ds.destroy();
    await built.drop();
  }
});
