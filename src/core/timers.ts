/** The longest delay `setTimeout` honours (2^31 − 1 ms, about 24.8 days); a longer one fires at once. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** A cancellable timer for any delay, however long: longer ones are waited in steps. */
export interface LongTimeout {
  clear(): void;
}

/** Calls `fn` after `ms` (at once when `ms` ≤ 0); the timer never keeps the process alive. */
export function setLongTimeout(fn: () => void, ms: number): LongTimeout {
  let timer: NodeJS.Timeout;
  const arm = (left: number) => {
    timer = setTimeout(
      () => (left > MAX_TIMEOUT_MS ? arm(left - MAX_TIMEOUT_MS) : fn()),
      Math.min(Math.max(left, 0), MAX_TIMEOUT_MS),
    );
    timer.unref();
  };
  arm(ms);
  return { clear: () => clearTimeout(timer) };
}

/**
 * Reconnect delays that double from `first` up to `max`, ms, for loops driven by events (a socket's
 * close) rather than by a call that fails (those use `retrying`). With `jitter`, each delay is drawn
 * from its upper half, so that many clients cut at once do not come back in lockstep. `wait` sleeps the
 * next one and returns early once `signal` aborts, so that a closing loop never sits out its backoff.
 */
export class Backoff {
  private next: number;

  constructor(
    private readonly first: number,
    private readonly max: number,
    private readonly jitter = false,
  ) {
    this.next = first;
  }

  /** The delay before the next attempt; each call doubles the one after, up to `max`. */
  delay(): number {
    const d = this.next;
    this.next = Math.min(this.next * 2, this.max);
    return this.jitter ? Math.round(d / 2 + (Math.random() * d) / 2) : d;
  }

  /** After a success: the next failure waits `first` again. */
  reset(): void {
    this.next = this.first;
  }

  wait(signal?: AbortSignal, ms = this.delay()): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}
