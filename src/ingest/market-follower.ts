import { WATERMARK_DELAY_MS } from "../core/market";
import { ObservedClock } from "../core/market-clock";
import { OutageLog } from "../core/outage";
import type { CheckpointsRepo } from "../db/checkpoints.repo";
import { Topic, type EventBus } from "../events/bus";

/**
 * The market's progress as a replica that does not ingest sees it (a follower, or one with INGEST=off):
 * the market time it can prove reached, from the newest stored trade, the committed checkpoints and the
 * watermarks of window events; and the committed watermark of its stream, for its status. Read at start,
 * then every `pollMs`, and from every window event. Observations made while `ingesting()` are skipped:
 * the ingest has its own clock.
 */
export class MarketFollower {
  /** The market clock observed from outside the ingest. */
  readonly observed = new ObservedClock();
  /** The stream's committed watermark as last read. */
  watermark: Date | null = null;
  private timer: NodeJS.Timeout | undefined;
  private readonly outage = new OutageLog("reading the market's progress");
  private events: AsyncIterableIterator<unknown> | undefined;

  constructor(
    private readonly checkpoints: CheckpointsRepo,
    private readonly stream: string,
    private readonly ingesting: () => boolean,
  ) {}

  /** Follows window events on `bus` and polls the database; resolves after the first read. */
  async start(bus: EventBus, pollMs: number): Promise<void> {
    const events = (this.events = bus.subscribe(Topic.WINDOWS));
    void (async () => {
      for await (const e of events as AsyncIterableIterator<{ watermark: Date }>)
        if (!this.ingesting()) this.observeWatermark(new Date(e.watermark));
    })();
    this.timer = setInterval(() => void this.poll(), pollMs);
    await this.poll();
  }

  /** A watermark reached: the market is at least WATERMARK_DELAY_MS past it. */
  observeWatermark(watermark: Date): void {
    this.observed.observe(watermark.getTime() + WATERMARK_DELAY_MS);
  }

  private async poll(): Promise<void> {
    if (this.ingesting()) return;
    try {
      const p = await this.checkpoints.progress(this.stream);
      if (this.ingesting()) return;
      this.watermark = p.watermark ?? this.watermark;
      // Any stream's checkpoint counts: they all follow the one market.
      if (p.latestWatermark) this.observeWatermark(p.latestWatermark);
      if (p.newestTrade) this.observed.observe(p.newestTrade.getTime());
      this.outage.ok();
    } catch (err) {
      this.outage.failed(err);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.events?.return?.();
  }
}
