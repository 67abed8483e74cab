import DataLoader from "dataloader";
import type { Config } from "../config/config";
import type { InstrumentRow, MarketRepo, QuoteRow } from "../db/market.repo";
import type { Principal } from "../policy/principal";

/** Per-operation loaders: each batches the lookups of one tick into one statement. */
export interface Loaders {
  instrument: DataLoader<string, InstrumentRow | null>;
  latestQuote: DataLoader<string, QuoteRow | null>;
}

/** What every resolver receives. Built once per HTTP request or WebSocket operation. */
export interface Context {
  principal: Principal;
  config: Config;
  market: MarketRepo;
  loaders: Loaders;
}

function bySymbol<T extends { symbol: string }>(keys: readonly string[], rows: T[]): (T | null)[] {
  const map = new Map(rows.map((r) => [r.symbol, r]));
  return keys.map((k) => map.get(k) ?? null);
}

export function createLoaders(market: MarketRepo): Loaders {
  return {
    instrument: new DataLoader(async (keys) => bySymbol(keys, await market.instrumentsBySymbol(keys))),
    latestQuote: new DataLoader(async (keys) => bySymbol(keys, await market.latestQuotes(keys))),
  };
}
