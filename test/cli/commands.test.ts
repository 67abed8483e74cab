import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "pg";
import { migrations } from "../../migrations";
import { withDatabase } from "../../src/db/naming";
import { createTokenVerifier } from "../../src/policy/tokens";
import { ADMIN_ENV, testDbPrefix } from "../support/env";
import { killAll, runToEnd } from "../support/processes";
import { startTestPlatform, TEST_SECRET, type TestPlatform } from "../support/server";

// The `token`, `migrate` and `print-schema` commands as users run them: the built CLI, as processes.
let t: TestPlatform;
beforeAll(async () => {
  t = await startTestPlatform();
});
afterAll(async () => {
  await killAll();
  await t.close();
});

const tmp = () => mkdtempSync(join(tmpdir(), "tickgraph-cli-"));

describe("token", () => {
  test("mints a token for the sub, roles and ttl given, which the server accepts", async () => {
    const before = Date.now();
    const r = await runToEnd(["token", "--sub", "ann", "--roles", "USER,STEWARD", "--ttl", "90s"], {
      JWT_SECRET: TEST_SECRET,
    });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const token = r.stdout.trim();
    expect(r.stdout).toBe(`${token}\n`);
    const principal = await createTokenVerifier({ secret: TEST_SECRET }).verify(token);
    expect(principal).toMatchObject({ id: "ann", roles: ["USER", "STEWARD"] });
    // Valid for at least the 90 s asked, and not a second more.
    expect(principal.expiresAt! * 1000).toBeGreaterThanOrEqual(before + 90_000);
    expect(principal.expiresAt! * 1000).toBeLessThanOrEqual(Date.now() + 91_000);
    const { body } = await t.gql(`{ me { id roles } }`, { token });
    expect(body).toEqual({ data: { me: { id: "ann", roles: ["USER", "STEWARD"] } } });
  });

  test("without JWT_SECRET it signs with the key under DATA_DIR (made there only on request)", async () => {
    const dir = tmp();
    const first = await runToEnd(["token", "--sub", "bo", "--create-key"], { JWT_SECRET: "", DATA_DIR: dir });
    const second = await runToEnd(["token", "--sub", "cy", "--roles", "OWNER"], {
      JWT_SECRET: "",
      DATA_DIR: dir,
    });
    expect([first.code, second.code]).toEqual([0, 0]);
    const verifier = createTokenVerifier({ secret: readFileSync(join(dir, "jwt-secret"), "utf8").trim() });
    expect(await verifier.verify(first.stdout.trim())).toMatchObject({ id: "bo", roles: ["USER"] });
    expect(await verifier.verify(second.stdout.trim())).toMatchObject({ id: "cy", roles: ["OWNER"] });
    // Default ttl: one hour.
    const { expiresAt } = await verifier.verify(first.stdout.trim());
    expect(expiresAt! * 1000 - Date.now()).toBeGreaterThan(3_590_000);
    expect(expiresAt! * 1000 - Date.now()).toBeLessThanOrEqual(3_601_000);
  });

  test.each([
    ["an unknown role", ["--sub", "x", "--roles", "KING"], {}, /KING/],
    ["a ttl that is no duration", ["--sub", "x", "--ttl", "5x"], {}, /--ttl "5x" is not a duration/],
    ["no --sub", ["--roles", "USER"], {}, /required option '--sub <id>'/],
    [
      "JWKS_URL set",
      ["--sub", "x"],
      { JWT_SECRET: "", JWKS_URL: "https://idp.example/jwks.json" },
      /JWKS_URL is set/,
    ],
    ["a short JWT_SECRET", ["--sub", "x"], { JWT_SECRET: "short" }, /JWT_SECRET is too short/],
  ])("refuses %s with a message saying what to fix, exit code 1", async (_name, args, env, message) => {
    const r = await runToEnd(["token", ...args], { JWT_SECRET: TEST_SECRET, ...env });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(message);
  });
});

test("migrate applies every migration to an empty database, in order, then finds nothing to do", async () => {
  const name = `${testDbPrefix()}migrate`;
  const admin = new Client({ connectionString: process.env[ADMIN_ENV] });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}"`);
    await admin.query(`CREATE DATABASE "${name}"`);
    const url = withDatabase(process.env[ADMIN_ENV]!, name);
    const first = await runToEnd(["migrate"], { DATABASE_URL: url });
    expect(first).toEqual({
      code: 0,
      stdout: `applied: ${migrations.map((m) => new m().name).join(", ")}\n`,
      stderr: "",
    });
    const again = await runToEnd(["migrate"], { DATABASE_URL: url });
    expect(again).toEqual({ code: 0, stdout: "database is up to date\n", stderr: "" });
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      const { rows } = await c.query(`SELECT name FROM migrations ORDER BY id`);
      expect(rows.map((r) => r.name)).toEqual(migrations.map((m) => new m().name));
      const { rows: tables } = await c.query(
        `SELECT count(*)::int AS n FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name IN ('quotes', 'window_aggregates', 'access_log', 'ingest_checkpoints')`,
      );
      expect(tables[0].n).toBe(4);
    } finally {
      await c.end();
    }
    // A database it cannot reach: exit 1 naming DATABASE_URL.
    const unreachable = await runToEnd(["migrate"], { DATABASE_URL: "postgres://nobody@127.0.0.1:9/none" });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/Cannot connect to DATABASE_URL/);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
}, 60_000);

test("print-schema prints schema.graphql, the schema with its applied directives", async () => {
  const r = await runToEnd(["print-schema"], {});
  expect(r.code).toBe(0);
  expect(r.stdout).toBe(readFileSync(join(__dirname, "..", "..", "schema.graphql"), "utf8"));
  expect(r.stdout).toMatch(/type Grant @classified\(level: RESTRICTED\)/);
});
