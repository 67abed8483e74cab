import { InvalidArgumentError, Option, type Command } from "commander";
import { parseFaults, startMockFeed, type FaultOptions } from "../feed";
import { log } from "../log";

interface FeedFlags {
  port: number;
  host: string;
  key: string;
  secret: string;
  seed: number;
  symbols: number;
  rate: number;
  start: Date | "now";
  speed: number;
  faults: FaultOptions;
}

function wholeNumber(flag: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = v.trim() === "" ? NaN : Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${flag} must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

function positiveNumber(flag: string): (v: string) => number {
  return (v) => {
    const n = v.trim() === "" ? NaN : Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a positive number`);
    return n;
  };
}

function nonEmpty(flag: string): (v: string) => string {
  return (v) => {
    if (v === "") throw new InvalidArgumentError(`${flag} must not be empty`);
    return v;
  };
}

function time(v: string): Date | "now" {
  if (v === "now") return v;
  const ms = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(ms)) {
    throw new InvalidArgumentError("--start must be an ISO-8601 time such as 2026-01-05T14:30:00Z, or now");
  }
  return new Date(ms);
}

function faults(v: string): FaultOptions {
  try {
    return parseFaults(v);
  } catch (err) {
    throw new InvalidArgumentError(`--faults: ${(err as Error).message}`);
  }
}

/** Resolves on the first SIGINT or SIGTERM, then stops listening for both. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
      resolve(signal);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}

/** Adds `tickgraph feed`: the mock market-data provider on its own, until SIGINT/SIGTERM. */
export function addFeedCommand(program: Command): void {
  program
    .command("feed")
    .description(
      "Run the mock market-data feed alone: an Alpaca market-data v2 WebSocket stream (/v2/iex, JSON or msgpack, " +
        "and the test stream /v2/test) and REST API on one port, over a deterministic simulated market.",
    )
    .addOption(
      new Option("--port <n>", "port to listen on (0 = any free port)")
        .argParser(wholeNumber("--port", 0, 65535))
        .default(8765),
    )
    .addOption(new Option("--host <addr>", "interface to listen on (0.0.0.0 = all)").default("127.0.0.1"))
    .addOption(
      new Option("--key <key>", "API key clients must present")
        .argParser(nonEmpty("--key"))
        .default("tickgraph"),
    )
    .addOption(
      new Option("--secret <secret>", "API secret clients must present")
        .argParser(nonEmpty("--secret"))
        .default("tickgraph"),
    )
    .addOption(
      new Option("--seed <n>", "seed of the simulated market: same seed, rate and speed, same trades")
        .argParser(wholeNumber("--seed", 0, 2 ** 32 - 1))
        .default(1),
    )
    .addOption(
      new Option("--symbols <n>", "number of instruments in the universe")
        .argParser(wholeNumber("--symbols", 1, 200_000))
        .default(50),
    )
    .addOption(
      new Option("--rate <n>", "trades per wall-clock second, all symbols together")
        .argParser(positiveNumber("--rate"))
        .default(200),
    )
    .addOption(
      new Option("--start <time>", "simulated time at start-up (ISO-8601, e.g. 2026-01-05T14:30:00Z)")
        .argParser(time)
        .default("now"),
    )
    .addOption(
      new Option("--speed <x>", "simulated seconds per wall second (60 = a market hour per minute)")
        .argParser(positiveNumber("--speed"))
        .default(1),
    )
    .addOption(
      new Option(
        "--faults <spec>",
        "faults to inject, e.g. malformed=0.01,duplicate=0.01,outoforder=0.01,late=0.005,disconnect=30s,slow=0.1",
      )
        .argParser(faults)
        .default({}, "none"),
    )
    .action(async (flags: FeedFlags) => {
      const feed = await startMockFeed({ ...flags, start: flags.start === "now" ? new Date() : flags.start });
      process.stdout.write(
        [
          `mock feed running (Alpaca market-data v2 protocol), simulated time ${feed.clock().toISOString()}`,
          `  stream: ${feed.url}  (JSON frames; msgpack with Content-Type: application/msgpack on the upgrade)`,
          `  test:   ${feed.testUrl}  (the test stream: symbol FAKEPACA)`,
          `  rest:   ${feed.restUrl}  (e.g. GET /v2/stocks/AAPL/trades, /v2/stocks/bars?symbols=AAPL,MSFT&timeframe=1Min, /v2/stocks/snapshots?symbols=AAPL)`,
          `  key:    ${flags.key}  (secret as set by --secret; REST headers APCA-API-KEY-ID / APCA-API-SECRET-KEY)`,
          "Ctrl-C to stop.",
          "",
        ].join("\n"),
      );
      const signal = await untilSignal();
      log.info({ signal }, "mock feed stopping");
      await feed.close();
      log.info({ stats: feed.stats() }, "mock feed stopped");
    });
}
