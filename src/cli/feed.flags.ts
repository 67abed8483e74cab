import { InvalidArgumentError, Option, type Command } from "commander";
import { parseFaults, type FaultOptions, type MockFeedOptions } from "../feed";

/** `serve`'s flags for the embedded mock feed, as commander hands them over. */
export interface FeedFlags {
  feedSeed?: number;
  feedSpeed?: number;
  feedRate?: number;
  feedSymbols?: number;
  feedFaults?: FaultOptions;
  feedStart?: Date;
}

function number(flag: string, check: (n: number) => boolean, what: string): (v: string) => number {
  return (v) => {
    const n = v.trim() === "" ? NaN : Number(v);
    if (!check(n)) throw new InvalidArgumentError(`${flag} must be ${what}`);
    return n;
  };
}

/** Adds the embedded feed's flags (ignored when FEED_URL points at an external feed). */
export function addFeedFlags(cmd: Command): Command {
  return cmd
    .addOption(
      new Option("--feed-seed <n>", "embedded feed: seed of the simulated market").argParser(
        number(
          "--feed-seed",
          (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32,
          "a whole number from 0 to 4294967295",
        ),
      ),
    )
    .addOption(
      new Option("--feed-speed <x>", "embedded feed: simulated seconds per wall second").argParser(
        number("--feed-speed", (n) => Number.isFinite(n) && n > 0, "a positive number"),
      ),
    )
    .addOption(
      new Option("--feed-rate <n>", "embedded feed: trades per wall second").argParser(
        number("--feed-rate", (n) => Number.isFinite(n) && n > 0, "a positive number"),
      ),
    )
    .addOption(
      new Option("--feed-symbols <n>", "embedded feed: number of instruments").argParser(
        number(
          "--feed-symbols",
          (n) => Number.isInteger(n) && n >= 1 && n <= 200_000,
          "a whole number from 1 to 200000",
        ),
      ),
    )
    .addOption(
      new Option(
        "--feed-faults <spec>",
        "embedded feed: faults, e.g. malformed=0.01,duplicate=0.01,late=0.005",
      ).argParser((v) => {
        try {
          return parseFaults(v);
        } catch (err) {
          throw new InvalidArgumentError(`--feed-faults: ${(err as Error).message}`);
        }
      }),
    )
    .addOption(
      new Option("--feed-start <time>", "embedded feed: simulated time at start-up (ISO-8601)").argParser(
        (v) => {
          const ms = Date.parse(v);
          if (!/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(ms))
            throw new InvalidArgumentError(
              "--feed-start must be an ISO-8601 time such as 2026-01-05T14:30:00Z",
            );
          return new Date(ms);
        },
      ),
    );
}

export function mockFeedOptions(f: FeedFlags): MockFeedOptions {
  const out: MockFeedOptions = {};
  if (f.feedSeed !== undefined) out.seed = f.feedSeed;
  if (f.feedSpeed !== undefined) out.speed = f.feedSpeed;
  if (f.feedRate !== undefined) out.rate = f.feedRate;
  if (f.feedSymbols !== undefined) out.symbols = f.feedSymbols;
  if (f.feedFaults !== undefined) out.faults = f.feedFaults;
  if (f.feedStart !== undefined) out.start = f.feedStart;
  return out;
}
