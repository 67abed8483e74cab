import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { createTestDatabase } from "../support/database";

// `tickgraph serve` on the mock market, as `npm start` runs it (from dist: `npm test` builds first): the
// links it prints open the pages signed in as the demo principals they name.
const BIN = resolve(__dirname, "../../bin/tickgraph.js");
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let proc: ChildProcess | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise((r) => proc!.once("exit", r));
    proc.kill("SIGTERM");
    await exited;
  }
  await db.drop();
});

/** Starts `serve` and collects its stdout lines until the health line, which comes last. */
function serve(): Promise<string[]> {
  return new Promise((done, fail) => {
    proc = spawn(process.execPath, [BIN, "serve", "--port", "0", "--feed-symbols", "5"], {
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        HOST: "127.0.0.1",
        JWT_SECRET: "serve-links-test-secret-of-32-bytes-or-more",
        DATA_DIR: mkdtempSync(join(tmpdir(), "tickgraph-links-")),
        LOG_LEVEL: "silent",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    proc.stderr!.on("data", (d) => (stderr += d));
    proc.once("exit", (code) => fail(new Error(`serve exited (${code}): ${stderr}`)));
    const lines: string[] = [];
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      lines.push(line);
      if (line.startsWith("Health:")) done(lines);
    });
  });
}

test("serve prints dashboard, explorer and access-log links that sign in as alice and sam", async () => {
  const lines = await serve();
  const link = (label: string) => {
    const line = lines.find((l) => l.startsWith(label));
    expect(line).toBeDefined();
    return new URL(line!.slice(label.length).trim());
  };
  const graphql = lines.join("\n").match(/serving GraphQL at (\S+) /)![1];
  for (const [url, path, who, roles] of [
    [link("Dashboard (as alice):"), "/", "alice", ["USER"]],
    [link("Explorer (as alice):"), "/explorer", "alice", ["USER"]],
    [link("Access log (as sam):"), "/access-log", "sam", ["STEWARD"]],
  ] as const) {
    expect(url.pathname).toBe(path);
    const page = await fetch(new URL(url.pathname, url));
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    const token = new URLSearchParams(url.hash.slice(1)).get("token");
    const res = await fetch(graphql, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: "{ me { id roles } }" }),
    });
    expect(((await res.json()) as { data: unknown }).data).toEqual({ me: { id: who, roles } });
  }
}, 60_000);
