import { performance } from "node:perf_hooks";

/**
 * Simulated market time: `startMs` when the clock starts, then `speed` simulated ms per wall ms.
 * Measured on the monotonic clock so a wall-clock adjustment never moves market time backwards.
 */
export class SimClock {
  private wallStart = performance.now();

  constructor(
    readonly startMs: number,
    readonly speed: number,
  ) {}

  /** Restarts the clock at `startMs` from now (the feed calls it once it is listening). */
  reset(): void {
    this.wallStart = performance.now();
  }

  nowMs(): number {
    return this.startMs + (performance.now() - this.wallStart) * this.speed;
  }

  now(): Date {
    return new Date(Math.floor(this.nowMs()));
  }
}
