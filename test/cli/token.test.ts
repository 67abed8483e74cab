import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { jwtVerify } from "jose";
import { tokenCommand } from "../../src/cli/main";
import { loadConfig } from "../../src/config/config";
import { createTestDatabase } from "../support/database";
import { killAll, run } from "../support/processes";

// The CLI a new user meets first: its version, and tokens that the running server accepts (from the
// command its banner prints, run from any folder), never from a key made up where there was none.
const BIN = resolve(__dirname, "../../bin/tickgraph.js");
const exec = promisify(execFile);
const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));
/** The environment of a user who has set nothing: the key must come from a data dir. */
const env = () => {
  const e: Record<string, string> = { ...(process.env as Record<string, string>), LOG_LEVEL: "silent" };
  for (const name of ["JWT_SECRET", "JWKS_URL", "DATA_DIR", "DATABASE_URL"]) delete e[name];
  return e;
};

afterAll(() => killAll());

test("--version prints the package's version", () => {
  const { version } = JSON.parse(readFileSync(resolve(__dirname, "../../package.json"), "utf8")) as {
    version: string;
  };
  for (const flag of ["--version", "-v"]) {
    const r = spawnSync(process.execPath, [BIN, flag], { encoding: "utf8", env: env() });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  }
});

test("token refuses to make up a key where there is none, and says how to get the right one", () => {
  const dir = tmp("tickgraph-nokey-");
  for (const args of [["--data-dir", join(dir, "state")], []]) {
    const r = spawnSync(process.execPath, [BIN, "token", "--sub", "alice", ...args], {
      encoding: "utf8",
      env: env(),
      cwd: dir,
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^configuration error: No token key in .*: .*--data-dir.*--create-key/);
  }
  expect(existsSync(join(dir, "state"))).toBe(false);
  expect(existsSync(join(dir, ".tickgraph"))).toBe(false);
});

test("token --create-key creates the key (readable by its owner only) and signs with it", async () => {
  const dir = join(tmp("tickgraph-newkey-"), "state");
  const { stdout } = await exec(
    process.execPath,
    [BIN, "token", "--sub", "alice", "--roles", "USER,STEWARD", "--data-dir", dir, "--create-key"],
    { env: env() },
  );
  const key = readFileSync(join(dir, "jwt-secret"), "utf8").trim();
  expect(statSync(join(dir, "jwt-secret")).mode & 0o777).toBe(0o600);
  const { payload } = await jwtVerify(stdout.trim(), new TextEncoder().encode(key));
  expect(payload).toMatchObject({ sub: "alice", roles: ["USER", "STEWARD"] });
  // Made once: the next token is signed with the same key.
  const again = await exec(process.execPath, [BIN, "token", "--sub", "bob", "--data-dir", dir], {
    env: env(),
  });
  await expect(jwtVerify(again.stdout.trim(), new TextEncoder().encode(key))).resolves.toBeDefined();
});

test("the banner's token command matches the running server, from whatever folder it is run", async () => {
  const db = await createTestDatabase();
  try {
    const cwd = tmp("tickgraph-serve-");
    const { out } = await run(
      ["serve", "--port", "0", "--data-dir", "state", "--feed-symbols", "3"],
      { ...env(), DATABASE_URL: db.url, HOST: "127.0.0.1" },
      /^Health:/,
      { cwd },
    );
    const banner = out.join("\n");
    const url = /serving GraphQL at (\S+) /.exec(banner)![1];
    const command = /Get a token: +TOKEN=\$\((.+)\)$/m.exec(banner)![1];
    expect(command).toBe(`npx tickgraph token --data-dir ${join(cwd, "state")} --sub alice --roles USER`);
    // Run as printed (without npx, which would look for the package), from another folder.
    const args = command.replace(/^npx tickgraph /, "").split(" ");
    const { stdout } = await exec(process.execPath, [BIN, ...args], { env: env(), cwd: tmp("elsewhere-") });
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${stdout.trim()}` },
      body: JSON.stringify({ query: "{ me { id } }" }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { me: { id: "alice" } } });
  } finally {
    await killAll();
    await db.drop();
  }
}, 60_000);

test("the token command names the data dir only when it is not the default, and never with JWT_SECRET", () => {
  const cwd = tmp("tickgraph-cwd-");
  expect(tokenCommand(loadConfig({}, { DATA_DIR: join(cwd, ".tickgraph") }), cwd)).toBe(
    "npx tickgraph token",
  );
  expect(tokenCommand(loadConfig({}, { DATA_DIR: "/srv/my data" }), cwd)).toBe(
    "npx tickgraph token --data-dir '/srv/my data'",
  );
  expect(tokenCommand(loadConfig({}, { DATA_DIR: "/srv/x", JWT_SECRET: "s".repeat(32) }), cwd)).toBe(
    "npx tickgraph token",
  );
  expect(tokenCommand(loadConfig({}, { JWKS_URL: "https://idp.example.com/jwks" }), cwd)).toBeNull();
});
