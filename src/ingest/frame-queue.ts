import type { RawFrame } from "../feed/protocol";

/** What the stream hands the ingest's single consumer, in order. */
export type Item =
  | { kind: "frame"; frame: RawFrame; receivedMs: number }
  /** A (re)connect is ready: backfill what the stream did not deliver before its first frame. */
  | { kind: "ready" }
  /** Time to backfill holes in the ids that stayed open. */
  | { kind: "gaps" };

const frameBytes = (f: RawFrame): number => (f.binary ? f.data.length : f.text.length);

/**
 * The queue between the socket and the one consumer, bounded in bytes: past `maxBytes` it pauses the
 * socket (TCP flow control then holds the feed back) and resumes it once half has drained. Counts items
 * in and items done, for `drained`.
 */
export class FrameQueue {
  private items: (Item | null)[] = [];
  private head = 0;
  private bytes = 0;
  private paused = false;
  private wake: (() => void) | null = null;
  /** Nothing more comes in: what is queued is still handed out. */
  private ended = false;
  /** Nothing more is handed out. */
  private dropped = false;
  private pushed = 0;
  private doneCount = 0;
  private readonly drains: { target: number; resolve: () => void }[] = [];

  constructor(
    private readonly maxBytes: number,
    private readonly flow: { pause(): void; resume(): void },
  ) {}

  push(item: Item): void {
    if (this.ended) return;
    this.pushed++;
    this.items.push(item);
    if (item.kind === "frame") {
      this.bytes += frameBytes(item.frame);
      if (this.bytes > this.maxBytes && !this.paused) {
        this.paused = true;
        this.flow.pause();
      }
    }
    this.wake?.();
  }

  /** The next item, waiting for one; null once the queue has ended and is empty, or was dropped. */
  async next(): Promise<Item | null> {
    while (this.head >= this.items.length && !this.dropped) {
      if (this.ended) return null;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
    if (this.dropped) return null;
    const item = this.items[this.head]!;
    // Drop the reference now: a processed frame must not wait for the compaction below to be freed.
    this.items[this.head++] = null;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    if (item.kind === "frame") {
      this.bytes -= frameBytes(item.frame);
      if (this.paused && this.bytes <= this.maxBytes / 2) {
        this.paused = false;
        this.flow.resume();
      }
    }
    return item;
  }

  /** The consumer finished an item taken with `next`. */
  done(): void {
    this.doneCount++;
    while (this.drains.length && this.drains[0].target <= this.doneCount) this.drains.shift()!.resolve();
  }

  /** Resolves once every item pushed before the call is done (or the queue was dropped). */
  drained(): Promise<void> {
    if (this.dropped || this.doneCount >= this.pushed) return Promise.resolve();
    return new Promise((resolve) => this.drains.push({ target: this.pushed, resolve }));
  }

  /** A new connection: nothing is held back from it. */
  unpause(): void {
    this.paused = false;
  }

  /** Takes nothing more in; `next` hands out what is queued, then null. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /** Hands out nothing more: `next` returns null at once, what is queued is let go. */
  drop(): void {
    this.ended = this.dropped = true;
    this.items = [];
    this.head = 0;
    this.wake?.();
    for (const d of this.drains.splice(0)) d.resolve();
  }
}
