/**
 * The mock market-data feed: an Alpaca market-data v2 compatible provider (WebSocket stream + REST)
 * over a deterministic simulated market, with fault injection. See docs/ARCHITECTURE.md and the README's feed section.
 */
export {
  DEFAULT_FEED_RATE,
  startMockFeed,
  type FeedStats,
  type MockFeed,
  type MockFeedOptions,
} from "./mock.feed";
export { parseFaults, formatFaults, type FaultOptions } from "./fault.options";
export { MALFORMED_KINDS, type MalformedKind } from "./fault.injector";
export {
  TradeGenerator,
  MAX_LATENESS_MS,
  type GeneratedEvent,
  type GeneratedQuote,
  type GeneratedTrade,
  type TradeGeneratorOptions,
} from "./trade.generator";
export { MessageSerializer } from "./message.serializer";
export { Timestamp, parseRfc3339, rfc3339Nano } from "./timestamp";
export { generateUniverse, type Instrument } from "./universe";
export * from "./protocol";
