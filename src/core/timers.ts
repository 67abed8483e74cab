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
