import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import autocannon from "autocannon";
import { Client } from "pg";
import { withDatabase } from "../src/db/naming";

/** The machine's Postgres (DATABASE_URL, else 127.0.0.1:5432): benchmarks measure a real server. */
export const ADMIN_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** URL of `name` on the bench server, created when missing. */
export async function benchDatabase(name: string): Promise<string> {
  const c = new Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    const { rowCount } = await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (!rowCount) await c.query(`CREATE DATABASE "${name}"`);
  } finally {
    await c.end();
  }
  return withDatabase(ADMIN_URL, name);
}

/** The machine's monotonic clock in µs, as CPU profiles stamp their samples (the same in every process). */
export const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** CPU ms a process has used so far (user + system, from /proc; Linux), or NaN where unreadable. */
export function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // clock ticks of 1/100 s
  } catch {
    return NaN;
  }
}

/**
 * CPU ms a single-threaded process (a Postgres backend) has run so far, to the nanosecond, from
 * /proc/<pid>/schedstat (Linux), or NaN where unreadable. /proc/<pid>/stat counts in 10 ms ticks, too
 * coarse for twenty backends that each run a few ms a second.
 */
export function threadCpuMs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]) / 1e6;
  } catch {
    return NaN;
  }
}

/**
 * CPU ms used so far, per process, by the Postgres server behind `ds` on this machine: the backends
 * connected to `ds`'s database and the server's background processes (WAL writer, checkpointer,
 * autovacuum…). Backends of other databases are left out, as are other Postgres servers (tests' embedded
 * clusters), which share the machine. Subtract two samples with `cpuSince`.
 */
export async function postgresCpu(ds: {
  query(sql: string): Promise<unknown>;
}): Promise<Map<number, number>> {
  const rows = (await ds.query(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR backend_type <> 'client backend'`,
  )) as { pid: number }[];
  const out = new Map<number, number>();
  for (const { pid } of rows) {
    const ms = procCpuMs(pid);
    if (Number.isFinite(ms)) out.set(pid, ms);
  }
  return out;
}

/**
 * CPU ms between two `postgresCpu` samples: a process only in the later one counts from its start; one that
 * ended in between (an autovacuum worker) is lost, a small undercount.
 */
export function cpuSince(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, ms] of after) sum += ms - (before.get(pid) ?? 0);
  return sum;
}

export interface Child {
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `node [...nodeArgs] script` and waits for its first stdout line `{"port":N}`. */
export function startChild(
  script: string,
  env: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<Child> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...nodeArgs, script], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    proc.once("exit", (code) => reject(new Error(`${script} exited with ${code} before listening`)));
    const lines = createInterface({ input: proc.stdout });
    lines.once("line", (line) => {
      const { port } = JSON.parse(line) as { port: number };
      resolve({
        port,
        proc,
        stop: () =>
          new Promise((done) => {
            proc.removeAllListeners("exit");
            // A child that died meanwhile has nothing left to stop (and will not exit again).
            if (proc.exitCode !== null || proc.signalCode !== null) return done();
            proc.once("exit", () => done());
            proc.kill("SIGTERM");
          }),
      });
    });
  });
}

export interface LoadResult {
  requestsPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  /** Responses with a 2xx status whose body carries GraphQL `errors`. */
  graphqlErrors: number;
  total: number;
}

/**
 * Drives POST requests for `seconds` with bodies taken round-robin; answers with GraphQL errors are
 * counted apart, since GraphQL servers report most failures with status 200.
 */
export async function load(opts: {
  url: string;
  bodies: string[];
  headers?: Record<string, string>;
  connections: number;
  seconds: number;
}): Promise<LoadResult> {
  let i = 0;
  let graphqlErrors = 0;
  const r = await autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: opts.seconds,
    method: "POST",
    headers: { "content-type": "application/json", ...opts.headers },
    requests: [
      {
        setupRequest: (req) => ({ ...req, body: opts.bodies[i++ % opts.bodies.length] }),
        onResponse: (status, body) => {
          if (status < 300 && body.includes('"errors"')) graphqlErrors++;
        },
      },
    ],
  });
  return {
    requestsPerSec: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    graphqlErrors,
    total: r.requests.total,
  };
}

/** `--name value` flags, each parsed as its default is typed (a number or a string). */
export function benchFlags<T extends Record<string, number | string>>(defaults: T): T {
  const out: Record<string, number | string> = { ...defaults };
  const argv = process.argv.slice(2);
  for (let k = 0; k < argv.length; k++) {
    const name = argv[k].replace(/^--/, "");
    if (!(name in defaults))
      throw new Error(
        `unknown flag ${argv[k]}; known: ${Object.keys(defaults)
          .map((d) => "--" + d)
          .join(" ")}`,
      );
    const raw = argv[++k];
    if (raw === undefined) throw new Error(`--${name} needs a value`);
    if (typeof defaults[name] === "string") {
      out[name] = raw;
      continue;
    }
    const v = Number(raw);
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} needs a non-negative number`);
    out[name] = v;
  }
  return out as T;
}

/** `--name value` flags as numbers, with defaults. */
export function numericFlags<T extends Record<string, number>>(defaults: T): T {
  return benchFlags(defaults);
}
