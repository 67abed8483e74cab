import pRetry from "p-retry";
import { log } from "../log";

export interface RetryOptions {
  /** What is retried, for the log line of each failure. */
  what: string;
  /** Delay before the first retry, ms; each next one doubles, up to `maxMs`. */
  firstMs: number;
  maxMs: number;
  /** Stops retrying: a wait in progress ends at once and the call rejects with the signal's reason. */
  signal?: AbortSignal;
  /** True for an error that retrying cannot cure: the call rejects with it at once. @default none */
  fatal?: (err: unknown) => boolean;
}

/**
 * Runs `attempt` until it succeeds, however many tries that takes, with exponential backoff between
 * them and one warning per failure. Programming errors (a TypeError that is not a network error) are
 * not retried.
 */
export function retrying<T>(attempt: () => Promise<T>, opts: RetryOptions): Promise<T> {
  return pRetry(attempt, {
    retries: Infinity,
    minTimeout: opts.firstMs,
    maxTimeout: opts.maxMs,
    factor: 2,
    signal: opts.signal,
    onFailedAttempt: ({ error, attemptNumber }) => {
      if (opts.signal?.aborted || opts.fatal?.(error)) return;
      const retryInMs = Math.min(opts.maxMs, opts.firstMs * 2 ** (attemptNumber - 1));
      log.warn({ err: error.message, retryInMs }, `${opts.what} failed; retrying`);
    },
    shouldRetry: ({ error }) => !opts.fatal?.(error),
  });
}
