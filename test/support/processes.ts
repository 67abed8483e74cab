import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { createInterface } from "node:readline";

// Real `tickgraph` processes, as in production: `npm test` builds dist first.
const BIN = resolve(__dirname, "../../bin/tickgraph.js");

export interface Proc {
  proc: ChildProcess;
  match: RegExpExecArray;
  /** Everything it wrote to stdout (JSON log lines and the banner). */
  out: string[];
}

/** The processes a test file started; `killAll` in its afterAll. */
const children = new Set<ChildProcess>();

/** Starts `tickgraph …` (in `opts.cwd`, else here) and resolves once a stdout line matches `ready`. */
export function run(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
  opts: { cwd?: string } = {},
): Promise<Proc> {
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, LOG_LEVEL: "silent", ...env },
      stdio: ["ignore", "pipe", "pipe"],
      cwd: opts.cwd,
    });
    children.add(proc);
    const out: string[] = [];
    let stderr = "";
    proc.stderr!.on("data", (d) => (stderr += d));
    proc.once("exit", (code, signal) => {
      children.delete(proc);
      reject(new Error(`tickgraph ${args[0]} exited (${code ?? signal}) before it was ready: ${stderr}`));
    });
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      out.push(line);
      const match = ready.exec(line);
      if (match) resolvePromise({ proc, match, out });
    });
  });
}

/** Sends `signal` and resolves once the process has exited. */
export function kill(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((done) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return done();
    proc.removeAllListeners("exit");
    proc.once("exit", () => {
      children.delete(proc);
      done();
    });
    proc.kill(signal);
  });
}

/** Kills every process still running. */
export function killAll(): Promise<void[]> {
  return Promise.all([...children].map((c) => kill(c, "SIGKILL")));
}

/** Runs `tickgraph …` to its end; resolves with its exit code and output, never rejects on a failure. */
export function runToEnd(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, LOG_LEVEL: "silent", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(proc);
    let stdout = "";
    let stderr = "";
    proc.stdout!.on("data", (d) => (stdout += d));
    proc.stderr!.on("data", (d) => (stderr += d));
    proc.once("error", reject);
    proc.once("close", (code) => {
      children.delete(proc);
      resolvePromise({ code, stdout, stderr });
    });
  });
}
