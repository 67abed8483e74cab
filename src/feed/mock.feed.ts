import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { log } from "../log";
import type { StreamCounters } from "./fault.injector";
import { checkFaults, formatFaults, parseFaults, type FaultOptions } from "./fault.options";
import { Market } from "./market";
import { STREAM_PATHS, TEST_STREAM_PATH, TEST_SYMBOL } from "./protocol";
import { restApp } from "./rest.routes";
import { SimClock } from "./sim.clock";
import { StreamServer } from "./stream.server";
import { generateUniverse, type Instrument } from "./universe";

export interface MockFeedOptions {
  /** TCP port; 0 = a free port picked by the OS (read it back from `MockFeed.port`). @default 0 */
  port?: number;
  /** Interface to listen on. @default "127.0.0.1" */
  host?: string;
  /** API key clients must present (stream `auth` or the REST headers). @default "tickgraph" */
  key?: string;
  /** @default "tickgraph" */
  secret?: string;
  /** Seeds the universe and the market; same seed, rate and speed → same trades. @default 1 */
  seed?: number;
  /** Number of instruments. @default 50 */
  symbols?: number;
  /** Trades per wall-clock second, all symbols together. @default 200 */
  rate?: number;
  /** Simulated time at start-up. @default now */
  start?: string | Date;
  /**
   * Where each symbol's price path picks up, by symbol (e.g. its last stored trade), so that a market
   * started again continues instead of going back to the seed's opening prices. Symbols not listed start
   * at their usual price. @default none
   */
  lastPrices?: Readonly<Record<string, number>>;
  /** Simulated seconds per wall second (60 = a market hour per wall minute). @default 1 */
  speed?: number;
  /** Fault injection, as `parseFaults` reads it or as an object. @default none */
  faults?: string | FaultOptions;
  /**
   * Trades kept per symbol for REST backfill, at most; older ones are dropped first. With the default
   * universe and rate the busiest symbol makes ~20 trades/s, so this holds over an hour of it.
   * @default 100000
   */
  historyPerSymbol?: number;
  /**
   * Trades kept over all symbols, at most: the history is the last `historyTotal` trades generated, i.e.
   * historyTotal / rate wall seconds (2.8 h at 200/s, 20 s at 100,000/s). This is the memory bound:
   * ~38 bytes a trade, ×2 worst-case growth slack (≤ ~150 MB at the default). @default 2000000
   */
  historyTotal?: number;
  /**
   * Quotes kept over all symbols, at most, for the REST quote history (the latest of each symbol is always
   * there). ~50 bytes a quote, ×2 growth slack. @default 500000
   */
  quoteHistoryTotal?: number;
  /** Time a new connection has to authenticate before 404 "auth timeout". @default 10000 */
  authTimeoutMs?: number;
  /** Authenticated connections per key; the next one gets 406. @default 5 */
  maxConnectionsPerKey?: number;
  /** Distinct symbols (trades ∪ quotes, `"*"` not counted) one connection may subscribe to; more gets 405. @default 10000 */
  maxSymbols?: number;
  /** Quotes per trade. @default 1 */
  quoteRatio?: number;
  /** Wall ms between generator ticks; each tick's messages go out as one array per subscriber. @default 20 */
  tickMs?: number;
  /** Bytes a connection may have unsent before it is closed with 407 "slow client". @default 67108864 */
  maxBufferedBytes?: number;
}

/**
 * What the feed has put on the stream (the injector's counters: per broadcast, not per client), what it
 * generated, and what it delivered (per client).
 */
export interface FeedStats extends StreamCounters {
  /** Simulated time now. */
  clock: string;
  /** Trades generated = trades in the REST history (each exactly once, late and out-of-order included). */
  generated: number;
  /** Trades with a back-dated event time (they are also counted in `generated` and `trades`). */
  late: number;
  /** Connections cut on purpose (the `disconnect` fault or dropConnections()). */
  disconnects: number;
  /** Connections closed with 407 slow client. */
  slowClients: number;
  /** Open connections now, and how many of them are authenticated. */
  connections: number;
  authenticated: number;
  /** Connections accepted since start. */
  accepted: number;
  /** Data frames, the data messages in them (raw malformed frames not counted) and bytes written, summed over all connections. */
  framesSent: number;
  messagesSent: number;
  bytesSent: number;
}

export interface MockFeed {
  /** The stream URL, `ws://host:port/v2/iex` (`/v2/sip` serves the same). */
  url: string;
  /** The test stream's URL, `ws://host:port/v2/test`: one symbol, FAKEPACA, always trading. */
  testUrl: string;
  /** Base of the REST endpoints, `http://host:port`. */
  restUrl: string;
  port: number;
  /** The current simulated time. */
  clock(): Date;
  stats(): FeedStats;
  /** The universe, in the order the generator indexes it. */
  instruments(): Instrument[];
  /** Cuts every connection at once, as a network failure would (clients see 1006). */
  dropConnections(): void;
  /** Stops generating, closes every connection (1001) and the HTTP server. */
  close(): Promise<void>;
}

/** Trades per wall second when `rate` is not given. */
export const DEFAULT_FEED_RATE = 200;

function positive(name: string, v: number): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0)
    throw new RangeError(`${name} must be a positive number, got ${v}`);
  return v;
}

function whole(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max)
    throw new RangeError(`${name} must be a whole number from ${min} to ${max}, got ${v}`);
  return v;
}

function startTime(v: string | Date | undefined): number {
  if (v === undefined) return Date.now();
  const ms = v instanceof Date ? v.getTime() : Date.parse(v);
  if (Number.isNaN(ms))
    throw new RangeError(`start must be an ISO-8601 time, e.g. 2026-01-05T14:30:00Z, got ${String(v)}`);
  return ms;
}

/** The host part of a URL for clients: a wildcard address is reached on loopback. */
function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * Starts the mock market-data provider: Alpaca v2 stream at `/v2/iex`, the test stream at `/v2/test`, and
 * REST on the same port.
 * Throws (before listening) a RangeError naming any option that cannot be used.
 */
export async function startMockFeed(opts: MockFeedOptions = {}): Promise<MockFeed> {
  const port = whole("port", opts.port ?? 0, 0, 65535);
  const host = opts.host ?? "127.0.0.1";
  const key = opts.key ?? "tickgraph";
  const secret = opts.secret ?? "tickgraph";
  const seed = whole("seed", opts.seed ?? 1, -(2 ** 31), 2 ** 32 - 1);
  const symbols = whole("symbols", opts.symbols ?? 50, 1, 200_000);
  const rate = positive("rate", opts.rate ?? DEFAULT_FEED_RATE);
  const speed = positive("speed", opts.speed ?? 1);
  const startMs = startTime(opts.start);
  const faults = checkFaults(
    typeof opts.faults === "string" ? parseFaults(opts.faults) : (opts.faults ?? {}),
  );
  const historyPerSymbol = whole("historyPerSymbol", opts.historyPerSymbol ?? 100_000, 1, 100_000_000);
  const historyTotal = whole("historyTotal", opts.historyTotal ?? 2_000_000, 1, 1_000_000_000);
  const quoteHistoryTotal = whole("quoteHistoryTotal", opts.quoteHistoryTotal ?? 500_000, 1, 1_000_000_000);
  const authTimeoutMs = positive("authTimeoutMs", opts.authTimeoutMs ?? 10_000);
  const maxConnectionsPerKey = whole("maxConnectionsPerKey", opts.maxConnectionsPerKey ?? 5, 1, 1_000_000);
  const maxSymbols = whole("maxSymbols", opts.maxSymbols ?? 10_000, 1, 10_000_000);
  const quoteRatio = opts.quoteRatio ?? 1;
  if (!(quoteRatio >= 0 && quoteRatio <= 100))
    throw new RangeError(`quoteRatio must be from 0 to 100, got ${quoteRatio}`);
  const tickMs = whole("tickMs", opts.tickMs ?? 20, 1, 10_000);
  const maxBufferedBytes = positive("maxBufferedBytes", opts.maxBufferedBytes ?? 64 * 1024 * 1024);

  const streamOptions = { key, secret, authTimeoutMs, maxConnectionsPerKey, maxSymbols, maxBufferedBytes };
  const lastPrices = opts.lastPrices ?? {};
  for (const [symbol, p] of Object.entries(lastPrices))
    if (!(typeof p === "number" && Number.isFinite(p) && p > 0))
      throw new RangeError(`lastPrices.${symbol} must be a positive number, got ${p}`);
  const instruments = generateUniverse(seed, symbols).map((inst) => {
    const p = lastPrices[inst.symbol];
    return p === undefined ? inst : { ...inst, initialPrice: p };
  });
  const market = new Market(
    {
      seed,
      instruments,
      rate,
      speed,
      startMs,
      quoteRatio,
      faults,
      historyPerSymbol,
      historyTotal,
      quoteHistoryTotal,
    },
    new StreamServer(streamOptions),
  );
  // Alpaca's test stream: one made-up symbol, trading a few times a second, no faults.
  const test = new Market(
    {
      seed,
      instruments: [
        {
          symbol: TEST_SYMBOL,
          name: "Fake Paca Inc. (test stream)",
          exchange: "NYSE",
          sector: "Information Technology",
          initialPrice: 130,
        },
      ],
      rate: 5,
      speed,
      startMs,
      faults: {},
      historyPerSymbol: 10_000,
      historyTotal: 10_000,
      quoteHistoryTotal: 10_000,
    },
    new StreamServer(streamOptions),
  );
  const symbolIndex = new Map(instruments.map((inst, i) => [inst.symbol, i]));
  const clock = new SimClock(startMs, speed);

  const app = restApp({
    key,
    secret,
    instruments,
    symbolIndex,
    trades: market.trades,
    quotes: market.quotes,
    bars: market.bars,
    now: () => clock.nowMs(),
  });
  const server = createServer(app);
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? "").split("?")[0];
    if ((STREAM_PATHS as readonly string[]).includes(path))
      return market.stream.handleUpgrade(req, socket, head);
    if (path === TEST_STREAM_PATH) return test.stream.handleUpgrade(req, socket, head);
    socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const actualPort = (server.address() as AddressInfo).port;

  clock.reset();
  const ticker = setInterval(() => {
    const now = clock.nowMs();
    market.tick(now);
    test.tick(now);
  }, tickMs);
  const dropper =
    faults.disconnectMs === undefined
      ? undefined
      : setInterval(() => {
          const n = market.stream.dropAll();
          if (n) log.debug({ connections: n }, "mock feed: dropped every connection (disconnect fault)");
        }, faults.disconnectMs);

  let closing: Promise<void> | undefined;
  const shutdown = async (): Promise<void> => {
    clearInterval(ticker);
    clearInterval(dropper);
    await Promise.all([market.stream.close(), test.stream.close()]);
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  };

  const shown = urlHost(host);
  const feed: MockFeed = {
    url: `ws://${shown}:${actualPort}${STREAM_PATHS[0]}`,
    testUrl: `ws://${shown}:${actualPort}${TEST_STREAM_PATH}`,
    restUrl: `http://${shown}:${actualPort}`,
    port: actualPort,
    clock: () => clock.now(),
    stats: () => {
      const c = market.injector.counters;
      const g = market.generator.counts;
      const stream = market.stream;
      const conn = stream.connections;
      return {
        clock: clock.now().toISOString(),
        ...c,
        malformedByKind: { ...c.malformedByKind },
        generated: g.trades,
        late: g.late,
        disconnects: stream.delivery.dropped,
        slowClients: stream.delivery.slowClients,
        connections: conn.open,
        authenticated: conn.authenticated,
        accepted: stream.delivery.accepted,
        framesSent: stream.delivery.frames,
        messagesSent: stream.delivery.messages,
        bytesSent: stream.delivery.bytes,
      };
    },
    instruments: () => instruments.map((i) => ({ ...i })),
    dropConnections: () => {
      market.stream.dropAll();
      test.stream.dropAll();
    },
    close: () => (closing ??= shutdown()),
  };
  log.info(
    {
      url: feed.url,
      rest: feed.restUrl,
      symbols,
      rate,
      speed,
      start: new Date(startMs).toISOString(),
      seed,
      faults: formatFaults(faults),
    },
    "mock feed listening",
  );
  return feed;
}
