import { log } from "../log";

/** How many items a delay line holds before it drops its oldest. @default 10000 */
export const MAX_HELD = 10_000;

/**
 * Items held until a cutoff passes their time, oldest first, bounded: past `max` the oldest are dropped
 * (a delayed view may skip; the stored data stays the source of truth), logged once per line.
 */
export class DelayLine<T> {
  private readonly items: { at: number; item: T }[] = [];
  /** Items dropped because the line was full. */
  dropped = 0;

  constructor(
    private readonly what: string,
    private readonly max = MAX_HELD,
  ) {}

  get size(): number {
    return this.items.length;
  }

  /** Holds `item` until the cutoff reaches `at` (epoch ms). */
  hold(at: number, item: T): void {
    // Items arrive nearly in time order: search from the newest end.
    let k = this.items.length;
    while (k > 0 && this.items[k - 1].at > at) k--;
    this.items.splice(k, 0, { at, item });
    if (this.items.length > this.max) {
      this.items.shift();
      if (this.dropped++ === 0)
        log.warn({ what: this.what, held: this.max }, "delay line full: dropping its oldest events");
    }
  }

  /** Takes every item whose time is at or before `cutoff` (all of them when null), oldest first. */
  release(cutoff: number | null): T[] {
    let n = 0;
    if (cutoff === null) n = this.items.length;
    else while (n < this.items.length && this.items[n].at <= cutoff) n++;
    return this.items.splice(0, n).map((x) => x.item);
  }
}
