import { Client } from "pg";
import { createTestDatabase } from "../support/database";

test("each test database is cloned from the migrated template", async () => {
  const db = await createTestDatabase();
  const c = new Client({ connectionString: db.url });
  await c.connect();
  const { rows } = await c.query("SELECT name FROM migrations ORDER BY id");
  expect(rows.map((r) => r.name)).toContain("InstrumentsQuotes1763700000000");
  await c.end();
  await db.drop();
});
