import { Client } from "pg";
import { createTestDatabase } from "../support/database";
import { isConnectionLoss } from "../../src/db/database";

test("each test database is cloned from the migrated template", async () => {
  const db = await createTestDatabase();
  const c = new Client({ connectionString: db.url });
  await c.connect();
  const { rows } = await c.query("SELECT name FROM migrations ORDER BY id");
  expect(rows.map((r) => r.name)).toContain("InstrumentsQuotes1763700000000");
  await c.end();
  await db.drop();
});

test("a lost or refused connection is told apart from a failed statement", async () => {
  const db = await createTestDatabase();
  const c = new Client({ connectionString: db.url });
  const admin = new Client({ connectionString: db.url });
  await c.connect();
  await admin.connect();
  c.on("error", () => undefined);
  try {
    const wrong = await c.query("SELECT no_such_column FROM quotes").catch((e: unknown) => e);
    expect(isConnectionLoss(wrong)).toBe(false);
    const { rows } = await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    await admin.query("SELECT pg_terminate_backend($1)", [rows[0].pid]);
    const cut = await c.query("SELECT 1").catch((e: unknown) => e);
    expect(isConnectionLoss(cut)).toBe(true);
    const refused = await new Client({ host: "127.0.0.1", port: 1 }).connect().catch((e: unknown) => e);
    expect(isConnectionLoss(refused)).toBe(true);
  } finally {
    await c.end().catch(() => undefined);
    await admin.end();
    await db.drop();
  }
});
