import { performance } from "node:perf_hooks";
import { log } from "../log";
import { BarBuilder } from "./bars";
import { FaultInjector, type Batch } from "./fault.injector";
import type { FaultOptions } from "./fault.options";
import { MessageSerializer } from "./message.serializer";
import type { StreamServer } from "./stream.server";
import { MAX_LATENESS_MS, TradeGenerator, type TradeGeneratorOptions } from "./trade.generator";
import { QuoteHistory, TradeHistory } from "./trade.history";

export interface MarketOptions extends TradeGeneratorOptions {
  startMs: number;
  rate: number;
  faults: FaultOptions;
  /** Seeds the fault injector. */
  seed: number;
  historyPerSymbol: number;
  historyTotal: number;
  quoteHistoryTotal: number;
}

/**
 * One simulated market and the stream that carries it: each tick generates what the clock has reached,
 * keeps it (trade and quote history, bars) and broadcasts it, with the transport faults applied.
 */
export class Market {
  readonly generator: TradeGenerator;
  readonly trades: TradeHistory;
  readonly quotes: QuoteHistory;
  readonly bars: BarBuilder;
  readonly injector: FaultInjector;
  private readonly serializer = new MessageSerializer();
  private readonly maxPerTick: number;
  private readonly backlog: Batch[] = [];
  private stalledUntil = 0;

  constructor(
    opts: MarketOptions,
    readonly stream: StreamServer,
  ) {
    this.generator = new TradeGenerator({ ...opts, late: opts.faults.late });
    const n = this.generator.instruments.length;
    this.trades = new TradeHistory(n, opts.historyPerSymbol, MAX_LATENESS_MS, opts.historyTotal);
    this.quotes = new QuoteHistory(n, opts.historyPerSymbol, opts.quoteHistoryTotal);
    this.bars = new BarBuilder(n, opts.startMs, MAX_LATENESS_MS);
    this.injector = new FaultInjector(opts.faults, opts.seed, this.serializer);
    // A stalled event loop must not turn into one enormous tick: catch up a quarter second of load at a time.
    this.maxPerTick = Math.max(1000, Math.ceil(opts.rate / 4));
  }

  /** Generates, keeps and broadcasts everything up to `clockMs` (simulated epoch ms). */
  tick(clockMs: number): void {
    try {
      const wall = performance.now();
      const events = this.generator.next(clockMs, this.maxPerTick);
      for (const e of events) {
        if (e.kind === "t") {
          this.trades.append(e.sym, e);
          this.bars.add(e.sym, e);
        } else this.quotes.append(e.sym, e);
      }
      const batch = this.injector.process(events, wall);
      // Every trade before the next slot exists now (the generator may lag the clock when catching up).
      for (const b of this.bars.due(Math.min(clockMs, this.generator.nextSlotMs))) {
        const symbol = this.generator.instruments[b.sym].symbol;
        batch.items.push(this.serializer.barItem(b.kind, symbol, b.bar.startMs, b.bar.agg));
      }
      if (wall < this.stalledUntil) {
        this.backlog.push(batch);
        return;
      }
      for (const b of this.backlog.splice(0)) this.stream.broadcast(b);
      this.stream.broadcast(batch);
      const stall = this.injector.stallMs();
      if (stall) this.stalledUntil = wall + stall;
    } catch (err) {
      log.error({ err }, "mock feed tick failed");
    }
  }
}
