import { Command, CommanderError } from "commander";
import { addFeedCommand } from "../../src/cli/feed.command";
import { setLogLevel } from "../../src/log";
import { TestClient } from "./feed.helpers";

beforeAll(() => setLogLevel("warn"));

function program(): { cmd: Command; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const cmd = new Command("tickgraph").exitOverride();
  cmd.configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => err.push(s) });
  addFeedCommand(cmd);
  for (const sub of cmd.commands)
    sub.exitOverride().configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => err.push(s) });
  return { cmd, out, err };
}

test("feed --help documents every flag with its default", async () => {
  const { cmd, out } = program();
  await expect(cmd.parseAsync(["node", "tickgraph", "feed", "--help"])).rejects.toBeInstanceOf(
    CommanderError,
  );
  const help = out.join("");
  for (const flag of [
    "--port",
    "--host",
    "--key",
    "--secret",
    "--seed",
    "--symbols",
    "--rate",
    "--start",
    "--speed",
    "--faults",
  ]) {
    expect(help).toContain(flag);
  }
  expect(help).toMatch(/--rate <n>[\s\S]*\(default: 200\)/);
  expect(help).toMatch(/--start <time>[\s\S]*\(default: "now"\)/);
  expect(help).toMatch(/--faults <spec>[\s\S]*\(default: none\)/);
  expect(help).toContain("(default: 8765)");
});

test.each([
  [["--rate", "abc"], "--rate must be a positive number"],
  [["--rate", "-5"], "--rate must be a positive number"],
  [["--speed", "0"], "--speed must be a positive number"],
  [["--port", "70000"], "--port must be a whole number from 0 to 65535"],
  [["--symbols", "2.5"], "--symbols must be a whole number"],
  [["--seed", "x"], "--seed must be a whole number"],
  [["--start", "tomorrow"], "--start must be an ISO-8601 time"],
  [["--faults", "chaos=1"], '--faults: unknown fault "chaos"'],
  [["--faults", "late=3"], '--faults: fault "late=3"'],
  [["--key", ""], "--key must not be empty"],
])("feed %j is refused: %s", async (args, message) => {
  const { cmd, err } = program();
  await expect(cmd.parseAsync(["node", "tickgraph", "feed", ...args])).rejects.toBeInstanceOf(CommanderError);
  expect(err.join("")).toContain(message);
});

test("feed starts, prints its URLs, serves, and stops cleanly on SIGTERM", async () => {
  const { cmd } = program();
  const printed: string[] = [];
  let onPrint = (): void => undefined;
  const write = jest.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    printed.push(String(chunk));
    onPrint();
    return true;
  });
  const signalsBefore = process.listenerCount("SIGTERM");
  const running = cmd.parseAsync([
    "node",
    "tickgraph",
    "feed",
    "--port",
    "0",
    "--rate",
    "500",
    "--seed",
    "3",
    "--speed",
    "60",
  ]);
  let client: TestClient | undefined;
  try {
    // The URL is printed once the feed listens: wait for that (or for the command to end without it).
    const url = await Promise.race([
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no stream URL printed within 15 s")), 15_000);
        onPrint = () => {
          const m = /stream: (ws:\/\/\S+)/.exec(printed.join(""));
          if (!m) return;
          clearTimeout(timer);
          resolve(m[1]);
        };
        onPrint();
      }),
      running.then(() => Promise.reject(new Error("the feed command ended before printing its URL"))),
    ]);
    expect(url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/v2\/iex$/);
    expect(printed.join("")).toMatch(/rest: {3}http:\/\/127\.0\.0\.1:\d+/);
    client = await TestClient.open(url);
    client.send({ action: "auth", key: "tickgraph", secret: "tickgraph" });
    await client.waitFor((m) => m.msg === "authenticated");
    expect(process.listenerCount("SIGTERM")).toBe(signalsBefore + 1);
    process.emit("SIGTERM", "SIGTERM");
    await running;
    expect((await client.closed).code).toBe(1001);
    expect(process.listenerCount("SIGTERM")).toBe(signalsBefore);
  } finally {
    write.mockRestore();
    await client?.close();
  }
});
