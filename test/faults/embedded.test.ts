import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { until } from "../support/wait";

// The embedded Postgres never strands its user: `tickgraph serve` as a process (`npm test` builds dist
// first) on a data dir of its own. Killed with -9, its Postgres stops too; an orphan left running is
// taken over (by serve and by migrate); Ctrl-C on `npm start` stops it in order; a data dir in use is
// refused naming its owner; a busy port and a bad setting fail first, with one line that says so.
const ROOT = resolve(__dirname, "../..");
const BIN = resolve(ROOT, "bin/tickgraph.js");
const children = new Set<ChildProcess>();
const dirs: string[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  // Any cluster a test left behind (its watchdog stops it within a second of its owner's death).
  for (const dir of dirs) {
    const owner = readOwner(dir);
    if (owner && alive(owner.postmaster)) process.kill(owner.postmaster, "SIGINT");
  }
  await until("the test clusters stopped", () => dirs.every((d) => !alive(readOwner(d)?.postmaster ?? 0)));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}, 60_000);

const alive = (pid: number) => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};
const readOwner = (dataDir: string): { pid: number; postmaster: number; watchdog: number } | null => {
  try {
    return JSON.parse(readFileSync(join(dataDir, "pg.owner.json"), "utf8"));
  } catch {
    return null;
  }
};
const postmasterIn = (dataDir: string): number | null => {
  try {
    return Number(readFileSync(join(dataDir, "pg", "postmaster.pid"), "utf8").split("\n")[0]);
  } catch {
    return null;
  }
};

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "tickgraph-embedded-"));
  dirs.push(dir);
  return dir;
}

interface Served {
  proc: ChildProcess;
  lines: string[];
  stderr: () => string;
}

/** Starts `serve` (embedded Postgres, INGEST=off) and resolves once it prints its health line. */
function serve(dir: string, env: Record<string, string> = {}): Promise<Served> {
  return new Promise((done, fail) => {
    const proc = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
      env: {
        ...process.env,
        DATABASE_URL: "",
        HOST: "127.0.0.1",
        INGEST: "off",
        DATA_DIR: dir,
        JWT_SECRET: "embedded-test-secret-of-32-bytes-or-more",
        LOG_LEVEL: "warn",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(proc);
    let stderr = "";
    proc.stderr!.on("data", (d) => (stderr += d));
    const lines: string[] = [];
    proc.once("exit", (code, signal) =>
      fail(Object.assign(new Error(`serve exited (${code ?? signal})`), { stderr, lines })),
    );
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      lines.push(line);
      if (line.startsWith("Health:")) done({ proc, lines, stderr: () => stderr });
    });
  });
}

/** Runs `serve` expecting it to fail: its stderr and exit code. */
function failing(dir: string, args: string[] = [], env: Record<string, string> = {}) {
  return command(dir, ["serve", ...args], env);
}

/** Runs `tickgraph <args>` on the data dir to its end: its exit code and output. */
async function command(dir: string, args: string[], env: Record<string, string> = {}) {
  const proc = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, DATABASE_URL: "", HOST: "127.0.0.1", INGEST: "off", DATA_DIR: dir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(proc);
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const code = await new Promise<number | null>((r) => proc.once("exit", (c) => r(c)));
  return { code, out };
}

const killed = (proc: ChildProcess) =>
  new Promise<void>((r) => {
    proc.once("exit", () => r());
    proc.kill("SIGKILL");
  });

test("kill -9 of serve stops its embedded Postgres too", async () => {
  const dir = dataDir();
  const { proc } = await serve(dir);
  const owner = readOwner(dir)!;
  expect(alive(owner.postmaster)).toBe(true);
  await killed(proc);
  await until("the orphaned Postgres stopped by its watchdog", () => !alive(owner.postmaster), 15_000);
}, 60_000);

test("an orphaned embedded Postgres (owner and watchdog gone) is taken over by the next start", async () => {
  const dir = dataDir();
  const first = await serve(dir);
  const owner = readOwner(dir)!;
  process.kill(owner.watchdog, "SIGKILL");
  await killed(first.proc);
  expect(alive(owner.postmaster)).toBe(true); // what a crash of both leaves behind
  const second = await serve(dir);
  expect(second.stderr() + second.lines.join("\n")).toMatch(/taking over an orphaned embedded Postgres/);
  expect(alive(owner.postmaster)).toBe(false);
  const now = postmasterIn(dir);
  expect(now && alive(now)).toBe(true);
  // It serves from the same cluster.
  const url = second.lines.join("\n").match(/serving GraphQL at (\S+) /)![1];
  expect((await fetch(url.replace("/graphql", "/readyz"))).status).toBe(200);
  await new Promise<void>((r) => {
    second.proc.once("exit", () => r());
    second.proc.kill("SIGTERM");
  });
  expect(alive(now!)).toBe(false);
}, 90_000);

test("after kill -9 of serve and its watchdog, `migrate` takes the orphaned Postgres over", async () => {
  const dir = dataDir();
  const first = await serve(dir);
  const owner = readOwner(dir)!;
  process.kill(owner.watchdog, "SIGKILL");
  await killed(first.proc);
  expect(alive(owner.postmaster)).toBe(true);
  const { code, out } = await command(dir, ["migrate"], { LOG_LEVEL: "warn" });
  expect(code).toBe(0);
  expect(out).toMatch(/taking over an orphaned embedded Postgres/);
  expect(out).toContain("database is up to date");
  expect(out).not.toMatch(/TypeError|\n\s+at /);
  expect(alive(owner.postmaster)).toBe(false);
  // migrate stopped the Postgres it started again.
  expect(alive(postmasterIn(dir) ?? 0)).toBe(false);
}, 90_000);

/** JSON log lines at error level or above. */
const errorLines = (text: string) =>
  text.split("\n").filter((l) => {
    try {
      return (JSON.parse(l) as { level?: number }).level! >= 50;
    } catch {
      return false;
    }
  });

test.each([
  ["its process group, as a terminal's Ctrl-C does", true],
  ["the npm process alone", false],
])(
  "Ctrl-C on `npm start`: SIGINT to %s stops the platform and its embedded Postgres, nothing logged as an error",
  async (_who, group) => {
    const dir = dataDir();
    const npm = spawn("npm", ["start", "--", "--port", "0"], {
      cwd: ROOT,
      // Its own process group, as a terminal's foreground job.
      detached: true,
      env: {
        ...process.env,
        DATABASE_URL: "",
        HOST: "127.0.0.1",
        INGEST: "off",
        DATA_DIR: dir,
        JWT_SECRET: "embedded-test-secret-of-32-bytes-or-more",
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(npm);
    let out = "";
    npm.stdout!.on("data", (d) => (out += d));
    npm.stderr!.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => npm.once("exit", (c) => r(c)));
    await until("serving", () => out.includes("Health:"), 60_000);
    const owner = readOwner(dir)!;
    expect(alive(owner.postmaster)).toBe(true);
    process.kill(group ? -npm.pid! : npm.pid!, "SIGINT");
    const code = await exited;
    expect(alive(owner.pid)).toBe(false);
    await until("its Postgres stopped", () => !alive(owner.postmaster), 15_000);
    expect(out).toMatch(/"signal":"SIGINT","graceSeconds":10,"msg":"shutting down"/);
    expect(errorLines(out)).toEqual([]);
    expect(out).not.toMatch(/stop did not complete|npm error/);
    expect(code).toBe(0);
    // It stopped in order: the owner file is gone, so the next start finds nothing orphaned.
    expect(readOwner(dir)).toBeNull();
  },
  90_000,
);

test("a data dir in use by a live tickgraph is refused, naming its pid", async () => {
  const dir = dataDir();
  const { proc } = await serve(dir);
  const { code, out } = await failing(dir, ["--port", "0"]);
  expect(code).toBe(1);
  expect(out).toContain(`in use by another tickgraph (pid ${proc.pid})`);
  expect(out).not.toMatch(/\n\s+at /);
  // The first one still serves.
  expect(alive(readOwner(dir)!.postmaster)).toBe(true);
  await killed(proc);
}, 60_000);

test("a busy port fails first, with one line naming it, before Postgres starts", async () => {
  const holder: Server = createServer();
  await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
  const port = (holder.address() as { port: number }).port;
  const dir = dataDir();
  try {
    const { code, out } = await failing(dir, ["--port", String(port)]);
    expect(code).toBe(1);
    expect(out.trim()).toBe(
      `configuration error: Port ${port} on 127.0.0.1 is in use: stop what holds it, or choose another with --port (PORT).`,
    );
    expect(postmasterIn(dir)).toBeNull(); // nothing was started
  } finally {
    holder.close();
  }
}, 30_000);

test("an invalid LOG_LEVEL is a configuration error like any other", async () => {
  const { code, out } = await failing(dataDir(), ["--port", "0"], { LOG_LEVEL: "verbose" });
  expect(code).toBe(1);
  expect(out.trim()).toBe(
    "configuration error: LOG_LEVEL=verbose is not valid: use one of fatal, error, warn, info, debug, trace, silent.",
  );
});

const asRoot = process.getuid?.() === 0 ? test : test.skip;
asRoot(
  "as root, a data dir the postgres user cannot reach is refused with what to do",
  async () => {
    const closed = dataDir();
    chmodSync(closed, 0o700);
    const { code, out } = await failing(join(closed, "data"), ["--port", "0"]);
    expect(code).toBe(1);
    expect(out).toContain(`${closed} is closed to other users`);
    expect(out).toMatch(/chmod o\+x/);
    expect(out).not.toMatch(/EACCES|\n\s+at /);
  },
  60_000,
);
