/** How long to wait before reconnecting: doubling from `baseMs`, never over `capMs`. */
export interface Backoff {
  /** The first wait's upper bound. @default 1000 */
  baseMs: number;
  /** The longest wait, however many attempts failed. @default 30000 */
  capMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { baseMs: 1000, capMs: 30_000 };

/**
 * The wait before reconnect attempt `attempt` (1 for the first): half of the doubled, capped delay plus
 * a random share of the other half. The random half spreads a wallboard fleet that lost the server at
 * the same moment, so that they do not all come back at once; the fixed half keeps each wait, until the
 * cap, at least as long as the one before.
 */
export function backoffMs(attempt: number, b: Backoff = DEFAULT_BACKOFF, random = Math.random): number {
  const ceiling = Math.min(b.capMs, b.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
