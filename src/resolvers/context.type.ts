import DataLoader from "dataloader";
import type { Config } from "../config/config";
import type { InstrumentRow, MarketRepo, QuoteRow } from "../db/market.repo";
import type { QuarantineRepo } from "../db/quarantine.repo";
import type { EventBus } from "../events/bus";
import type { IngestStatus } from "../ingest/ingest";
import type { ReplicaIngestStatus } from "../ingest/lease";
import type { WindowsRepo } from "../db/windows.repo";
import type { Governance } from "../policy/governance";
import type { MarketClock } from "../core/market-clock";
import type { Principal } from "../policy/principal";
import type { PolicySession } from "../policy/session";

/** Per-operation loaders: each batches the lookups of one tick into one statement. */
export interface Loaders {
  instrument: DataLoader<string, InstrumentRow | null>;
  latestQuote: DataLoader<string, QuoteRow | null>;
}

/** What the ingest fields read: the running loop's status (null with ingest off) and the quarantine. */
export interface IngestServices {
  status(): IngestStatus | ReplicaIngestStatus | null;
  quarantine: QuarantineRepo;
}

/**
 * What every resolver receives, and the only way it reaches anything: built once per HTTP request or
 * WebSocket operation.
 */
export interface Context {
  principal: Principal;
  config: Config;
  market: MarketRepo;
  windows: WindowsRepo;
  loaders: Loaders;
  /** Grants, requests, field policies and the access log. */
  governance: Governance;
  /** This operation's policy checks and what they recorded; null when the policy layer is off. */
  policy: PolicySession | null;
  /** The market's now (delays are measured on it). */
  clock: MarketClock;
  /** The events live fields listen to. */
  bus: EventBus;
  /** The ingest fields' services. */
  ingest: IngestServices;
  /**
   * Set by a live field's stream as it yields an item: which part of the field's current value the item
   * is. The fan-out keeps the newest part per id to send a subscriber that joins a running stream.
   */
  liveMark?: LiveMark;
  /**
   * Set by a resumable live field's stream as it yields an item: the item's cursor. The fan-out keeps
   * the last one each subscriber was sent, to continue from there if the subscriber changes streams.
   */
  liveCursor?: string;
}

/**
 * A live item's place in its field's current value: items with the newest `at` make it up, one per `id`
 * (a board is one item, id ""; a window's rows are one per symbol).
 */
export interface LiveMark {
  /** Epoch ms of what the item is for (a window's end, a board's time). */
  at: number;
  id: string;
}

function bySymbol<T extends { symbol: string }>(keys: readonly string[], rows: T[]): (T | null)[] {
  const map = new Map(rows.map((r) => [r.symbol, r]));
  return keys.map((k) => map.get(k) ?? null);
}

/** `delayCutoff` gives the newest event time the caller may see (null: real time), asked per batch. */
export function createLoaders(market: MarketRepo, delayCutoff: () => Date | null): Loaders {
  return {
    instrument: new DataLoader(async (keys) => bySymbol(keys, await market.instrumentsBySymbol(keys))),
    latestQuote: new DataLoader(async (keys) =>
      bySymbol(keys, await market.latestQuotes(keys, delayCutoff())),
    ),
  };
}
