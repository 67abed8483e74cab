import { Command, CommanderError } from "commander";
import { addFeedFlags, mockFeedOptions, type FeedFlags } from "../../src/cli/feed.flags";
import { ConfigError, loadConfig } from "../../src/config/config";

function serve(): { cmd: Command; seen: FeedFlags[]; err: string[] } {
  const seen: FeedFlags[] = [];
  const err: string[] = [];
  const cmd = new Command("tickgraph").exitOverride();
  addFeedFlags(cmd.command("serve"))
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: (s) => err.push(s) })
    .action((opts: FeedFlags) => void seen.push(opts));
  return { cmd, seen, err };
}

test("serve passes the embedded feed's flags through to the mock feed", async () => {
  const { cmd, seen } = serve();
  await cmd.parseAsync(
    [
      "serve",
      "--feed-seed",
      "7",
      "--feed-speed",
      "60",
      "--feed-rate",
      "5000",
      "--feed-symbols",
      "300",
    ].concat(["--feed-faults", "malformed=0.01,disconnect=30s", "--feed-start", "2026-01-05T14:30:00Z"]),
    { from: "user" },
  );
  expect(mockFeedOptions(seen[0])).toEqual({
    seed: 7,
    speed: 60,
    rate: 5000,
    symbols: 300,
    faults: { malformed: 0.01, disconnectMs: 30_000 },
    start: new Date("2026-01-05T14:30:00Z"),
  });
});

test("no flags leave the feed's own defaults", async () => {
  const { cmd, seen } = serve();
  await cmd.parseAsync(["serve"], { from: "user" });
  expect(mockFeedOptions(seen[0])).toEqual({});
});

test.each([
  ["--feed-rate", "0", /--feed-rate must be a positive number/],
  ["--feed-symbols", "1.5", /--feed-symbols must be a whole number/],
  ["--feed-faults", "typo=1", /--feed-faults: unknown fault "typo"/],
  ["--feed-start", "tomorrow", /--feed-start must be an ISO-8601 time/],
])("%s %s is refused with a message that says what to fix", async (flag, value, message) => {
  const { cmd, err } = serve();
  await expect(cmd.parseAsync(["serve", flag, value], { from: "user" })).rejects.toBeInstanceOf(
    CommanderError,
  );
  expect(err.join("")).toMatch(message);
});

test("INGEST turns the feed and ingest loop on and off; anything else fails fast", () => {
  expect(loadConfig({}, {}).ingest).toBe(true);
  expect(loadConfig({ INGEST: "off" }, {}).ingest).toBe(false);
  expect(loadConfig({ INGEST: "on" }, {}).ingest).toBe(true);
  expect(() => loadConfig({ INGEST: "maybe" }, {})).toThrow(
    new ConfigError("INGEST=maybe is not valid: use on or off."),
  );
});
