import { Client } from "pg";
import { AuditKey } from "../../src/policy/audit";
import { Role } from "../../src/policy/principal";
import { startTestPlatform, type TestPlatform } from "../support/server";

// A superuser can bypass the trigger; the hash chain still shows where the log was touched.
let t: TestPlatform;
let steward: string;
let pg: Client;

beforeAll(async () => {
  t = await startTestPlatform();
  steward = await t.token("sid", [Role.STEWARD]);
  pg = new Client({ connectionString: t.databaseUrl });
  await pg.connect();
  for (let i = 0; i < 12; i++) await t.gql(`{ me { id } }`, { token: await t.token(`u${i}`) });
});
afterAll(async () => {
  await pg.end();
  await t.close();
});

const verify = async () =>
  (await t.gql(`{ verifyAccessLog { ok checked firstBrokenSeq } }`, { token: steward })).body.data
    .verifyAccessLog;

test("an intact log verifies", async () => {
  expect(await verify()).toEqual({ ok: true, checked: expect.any(Number), firstBrokenSeq: null });
});

test("an edited row is found by its seq, and the log verifies again once restored", async () => {
  const { rows } = await pg.query("SELECT principal FROM access_log WHERE seq = 5");
  await pg.query("SET session_replication_role = replica"); // skips the append-only trigger
  await pg.query("UPDATE access_log SET principal = 'someone-else' WHERE seq = 5");
  await pg.query("SET session_replication_role = origin");
  expect(await verify()).toEqual({ ok: false, checked: 4, firstBrokenSeq: 5 });

  // Changing an array element, or a number, is caught the same way.
  await pg.query("SET session_replication_role = replica");
  await pg.query("UPDATE access_log SET principal = $1 WHERE seq = 5", [rows[0].principal]);
  await pg.query("UPDATE access_log SET row_count = row_count + 1 WHERE seq = 7");
  await pg.query("SET session_replication_role = origin");
  expect((await verify()).firstBrokenSeq).toBe(7);
  await pg.query("SET session_replication_role = replica");
  await pg.query("UPDATE access_log SET row_count = row_count - 1 WHERE seq = 7");
  await pg.query("UPDATE access_log SET prev_hash = repeat('0', 64) WHERE seq = 8");
  await pg.query("SET session_replication_role = origin");
  expect((await verify()).firstBrokenSeq).toBe(8);
  await pg.query("SET session_replication_role = replica");
  await pg.query(
    "UPDATE access_log SET prev_hash = (SELECT hash FROM access_log WHERE seq = 7) WHERE seq = 8",
  );
  await pg.query("SET session_replication_role = origin");
  expect((await verify()).ok).toBe(true);
});

test("an edited row whose hash is recomputed without the key is found at that row", async () => {
  const { body } = await t.gql(
    `{ accessLog(first: 1000) { nodes { seq at principal roles client ip operation operationName operationHash phase
       allowed masked denied symbols delayed decision errorCode rowCount durationMs occurrences prevHash hash keyed } } }`,
    { token: steward },
  );
  const row = body.data.accessLog.nodes.find((n: { seq: number }) => n.seq === 3);
  const forged = { ...row, at: new Date(row.at), principal: "someone-else" };
  // The attacker knows the canonical form, but not the key the chain is computed with.
  const guessed = new AuditKey(Buffer.from("a key that is not the deployment's, 32+ bytes")).chain(
    row.prevHash,
    3,
    forged,
  );
  await pg.query("SET session_replication_role = replica");
  await pg.query("UPDATE access_log SET principal = 'someone-else', hash = $1 WHERE seq = 3", [guessed]);
  await pg.query("SET session_replication_role = origin");
  expect(await verify()).toEqual({ ok: false, checked: 2, firstBrokenSeq: 3 });
  await pg.query("SET session_replication_role = replica");
  await pg.query("UPDATE access_log SET principal = $1, hash = $2 WHERE seq = 3", [row.principal, row.hash]);
  await pg.query("SET session_replication_role = origin");
  expect((await verify()).ok).toBe(true);
});

test("a DELETE is refused; a row removed with the trigger disabled is found missing", async () => {
  await expect(pg.query("DELETE FROM access_log WHERE seq = 6")).rejects.toThrow(/append-only/);
  expect((await verify()).ok).toBe(true);
  await pg.query("ALTER TABLE access_log DISABLE TRIGGER access_log_no_change");
  await pg.query("DELETE FROM access_log WHERE seq = 6");
  await pg.query("ALTER TABLE access_log ENABLE TRIGGER access_log_no_change");
  expect(await verify()).toEqual({ ok: false, checked: 5, firstBrokenSeq: 6 });
  // New entries still chain on; the break stays where it was.
  await t.gql(`{ me { id } }`);
  expect((await verify()).firstBrokenSeq).toBe(6);
});
