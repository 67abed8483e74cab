import "reflect-metadata";
import { loadConfig } from "../../src/config/config";
import { createDataSource } from "../../src/db/data-source";
import { createEventBus, Topic } from "../../src/events/bus";
import { subscribers as subscribersGauge } from "../../src/metrics";
import type { CommittedTrades } from "../../src/core/trades";
import { createTokenVerifier } from "../../src/policy/tokens";
import { buildTickgraphSchema } from "../../src/schema/schema";
import { wallClock } from "../../src/core/market-clock";
import { Server } from "../../src/server/server";
import { WindowSize } from "../../src/windows/windows";
import { answerCommands, report } from "./fanout.protocol";

// The GraphQL server of bench:fanout, on its own bus: it publishes events when told (over IPC) and
// reports when it published each (epoch ms), its CPU time and its peak RSS.

function ticks(symbols: string[], at: number, from: number): CommittedTrades {
  const time = new Date(at).toISOString();
  const n = symbols.length;
  return {
    id: symbols.map((_, k) => String(from + k)),
    symbol: symbols,
    time: Array<string>(n).fill(time),
    seq: symbols.map((_, k) => from + k),
    price: symbols.map((_, k) => 100 + k / 10),
    size: Array<number>(n).fill(100),
    bid: symbols.map((_, k) => 99.99 + k / 10),
    bidSize: Array<number | null>(n).fill(3),
    ask: symbols.map((_, k) => 100.01 + k / 10),
    askSize: Array<number | null>(n).fill(4),
    exchange: Array<string>(n).fill("V"),
    source: Array<string>(n).fill("bench"),
    received: Array<number>(n).fill(at),
  };
}

async function main() {
  const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", INGEST: "off" });
  const ds = createDataSource({ url: config.databaseUrl!, statementTimeoutMs: 5000, poolSize: 8 });
  await ds.initialize();
  const bus = createEventBus();
  const server = await Server.start({
    config,
    schema: buildTickgraphSchema(),
    dataSource: ds,
    verifier: createTokenVerifier({ secret: config.jwtSecret! }),
    bus,
    // The bench's synthetic ticks are stamped with wall time.
    clock: wallClock,
  });
  let seq = 1;
  answerCommands({
    subscribers: async () => (await subscribersGauge.get()).values[0]?.value ?? 0,
    publish(cmd, k, at) {
      if (cmd.publish === "ticks") {
        bus.publish(Topic.QUOTES, ticks(cmd.symbols, Math.round(at), seq));
        seq += cmd.symbols.length;
        return null; // a tick's eventTime is its publish time
      }
      const end = cmd.ends[k];
      bus.publish(Topic.WINDOWS, {
        opened: [{ size: WindowSize.ONE_MINUTE, windowEnd: new Date(end), count: 100 }],
        revised: [],
        finalUntil: null,
        watermark: new Date(end),
      });
      return end;
    },
  });
  report({ port: server.port });
  process.on(
    "SIGTERM",
    () =>
      void server
        .close()
        .then(() => ds.destroy())
        .then(() => process.exit(0)),
  );
}
void main();
