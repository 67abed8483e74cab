import { backoffMs, DEFAULT_BACKOFF } from "../../web/src/backoff";

// The dashboard's wait before each reconnect attempt (web/src/backoff.ts), at the random extremes.
const low = () => 0;
const high = () => 1 - Number.EPSILON;

test("the wait doubles from 0.5–1 s up to the cap, with a random half", () => {
  expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, DEFAULT_BACKOFF, low))).toEqual([
    500, 1000, 2000, 4000, 8000, 15_000,
  ]);
  expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, DEFAULT_BACKOFF, high))).toEqual([
    1000, 2000, 4000, 8000, 16_000, 30_000,
  ]);
});

test("however many attempts failed, the wait stays within the cap; below it, no wait is shorter than the last", () => {
  for (let n = 1; n < 2000; n++) {
    expect(backoffMs(n, DEFAULT_BACKOFF, high)).toBeLessThanOrEqual(DEFAULT_BACKOFF.capMs);
    expect(backoffMs(n + 1, DEFAULT_BACKOFF, low)).toBeGreaterThanOrEqual(
      Math.min(backoffMs(n, DEFAULT_BACKOFF, high), DEFAULT_BACKOFF.capMs / 2),
    );
  }
  expect(backoffMs(10_000, { baseMs: 250, capMs: 5000 }, low)).toBe(2500);
});

test("the random half spreads clients that lost the server at the same moment", () => {
  const waits = new Set(Array.from({ length: 50 }, () => backoffMs(4)));
  expect(waits.size).toBeGreaterThan(10);
  for (const w of waits) expect(w).toBeGreaterThanOrEqual(4000);
});
