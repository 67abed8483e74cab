import { readFileSync } from "node:fs";
import { Client } from "pg";
import { auditCheckpointFile } from "../../src/config/config";
import { startPlatform, type Platform } from "../../src/platform";
import { AuditKey, type AccessLogRecord, type AuditCheckpoint } from "../../src/policy/audit";
import { Role } from "../../src/policy/principal";
import { createTestDatabase } from "../support/database";
import { testConfig, TEST_AUDIT_SECRET, TEST_SECRET } from "../support/server";
import { mintToken } from "../../src/policy/tokens";

// A superuser who bypasses the append-only trigger can delete rows, truncate the table and rewrite
// rows with a recomputed chain. None of it passes verifyAccessLog: the chain is keyed by a secret kept
// outside the database, and the head is checkpointed, signed, outside it too (DATA_DIR, the log, a
// metric), so a cut tail or an emptied table is found, also after a restart.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let config: ReturnType<typeof testConfig>;
let platform: Platform;
let pg: Client;
let steward: string;

// Each test tampers with a log of its own: the evidence of a cut is kept for good, by design.
beforeEach(async () => {
  db = await createTestDatabase();
  config = testConfig(db.url, { INGEST: "off" });
  platform = await startPlatform(config);
  pg = new Client({ connectionString: db.url });
  await pg.connect();
  steward = await mintToken(TEST_SECRET, "sal", [Role.STEWARD], 3600);
});
afterEach(async () => {
  await pg.end();
  await platform.close();
  await db.drop();
});

async function gql(query: string, token = steward) {
  const res = await fetch(platform.server.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (await res.json()) as any;
}
const verify = async () =>
  (await gql(`{ verifyAccessLog { ok checked firstBrokenSeq checkpointSeq problem } }`)).data.verifyAccessLog;
const traffic = async (n: number) => {
  const token = await mintToken(TEST_SECRET, "tom", [Role.USER], 3600);
  for (let k = 0; k < n; k++) await gql(`{ me { id } }`, token);
};
const lastSeq = async () => Number((await pg.query("SELECT max(seq) AS s FROM access_log")).rows[0].s ?? 0);
const asSuperuser = async (sql: string) => {
  await pg.query("SET session_replication_role = replica"); // skips the append-only triggers
  try {
    await pg.query(sql);
  } finally {
    await pg.query("SET session_replication_role = origin");
  }
};

/** Restarts the platform on the same database and DATA_DIR: nothing of the old process's memory stays. */
async function restart(): Promise<void> {
  await platform.close();
  platform = await startPlatform(config);
}

test("deleting the newest entries is found: at once, and after a restart from the checkpoint file", async () => {
  await traffic(12);
  expect((await verify()).ok).toBe(true);
  const end = await lastSeq();
  await asSuperuser(`DELETE FROM access_log WHERE seq > ${end - 4}`);
  const now = await verify();
  expect(now).toMatchObject({ ok: false, firstBrokenSeq: end - 3 });
  expect(now.problem).toMatch(/missing/);

  await restart();
  // The stop checkpointed the head it wrote; the restarted process knows it only from the file.
  const file: AuditCheckpoint = JSON.parse(readFileSync(auditCheckpointFile(config), "utf8"));
  expect(new AuditKey(Buffer.from(TEST_AUDIT_SECRET)).verifies(file)).toBe(true);
  expect(file.seq).toBeGreaterThanOrEqual(end);
  expect(await verify()).toMatchObject({ ok: false, firstBrokenSeq: end - 3, checkpointSeq: file.seq });
});

test("TRUNCATE is found", async () => {
  await traffic(5);
  await asSuperuser(`TRUNCATE access_log`);
  expect(await verify()).toMatchObject({ ok: false, firstBrokenSeq: 1 });
  await restart();
  expect(await verify()).toMatchObject({ ok: false, firstBrokenSeq: 1 });
});

test("an edit with the whole chain recomputed (without the key) is found", async () => {
  await traffic(10);
  expect((await verify()).ok).toBe(true);
  // The attacker rewrites entry 4 and recomputes every hash from there as the chain was computed before
  // the key (sha256 of the canonical form, which the code shows), marking those rows as written before
  // the key: still caught, at entry 4.
  await relink(4, (e) => (e.seq === 4 ? { ...e, principal: "mallory" } : e));
  expect(await verify()).toMatchObject({ ok: false, firstBrokenSeq: 4 });
  // Rewriting the whole log from seq 1 as if it predated the key leaves the signed head unmatched.
  await relink(1, (e) => e);
  const head = await lastSeq();
  const all = await verify();
  // (entries 1..head form a valid pre-key chain now: only the signed head shows the rewrite)
  expect(all).toMatchObject({ ok: false, firstBrokenSeq: head, checkpointSeq: head });
  expect(all.problem).toMatch(/checkpoint/);
});

/** Recomputes the unkeyed (pre-key) chain from `from` on, with `edit` applied to each entry. */
async function relink(from: number, edit: (e: AccessLogRecord) => AccessLogRecord): Promise<void> {
  // Read straight from the table: a query through the API would add an entry of its own meanwhile.
  const { rows: stored } = await pg.query(`SELECT seq::int, at, principal, roles, client, ip, operation,
    operation_name AS "operationName", operation_hash AS "operationHash", phase, allowed, masked, denied, symbols,
    delayed, decision, error_code AS "errorCode", row_count AS "rowCount", duration_ms AS "durationMs", occurrences,
    prev_hash AS "prevHash", hash, keyed FROM access_log ORDER BY seq`);
  const rows = stored as AccessLogRecord[];
  const unkeyed = new AuditKey(Buffer.from("the attacker has no key; unkeyed hashes need none"));
  let prev = rows.find((r) => r.seq === from - 1)?.hash ?? "0".repeat(64);
  await pg.query("SET session_replication_role = replica");
  try {
    for (const row of rows.filter((r) => r.seq >= from)) {
      const e = edit(row);
      const hash = unkeyed.chain(prev, e.seq, e, false);
      await pg.query(
        `UPDATE access_log SET principal = $2, prev_hash = $3, hash = $4, keyed = false WHERE seq = $1`,
        [e.seq, e.principal, prev, hash],
      );
      prev = hash;
    }
  } finally {
    await pg.query("SET session_replication_role = origin");
  }
}

test("the head checkpoint is exported as a metric", async () => {
  await traffic(3);
  await restart(); // a stop checkpoints
  const metrics = await (await fetch(platform.server.url.replace("/graphql", "/metrics"))).text();
  const file: AuditCheckpoint = JSON.parse(readFileSync(auditCheckpointFile(config), "utf8"));
  // The restarted process has not checkpointed yet; its predecessor's figure is in the file.
  expect(metrics).toMatch(/tickgraph_audit_checkpoint_seq \d+/);
  expect(file.seq).toBeGreaterThan(0);
});
