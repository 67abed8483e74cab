import { startMockFeed } from "../../src/feed";
import { setLogLevel } from "../../src/log";
import { getJson, until } from "./feed.helpers";

beforeAll(() => setLogLevel("silent"));

interface TradesPage {
  trades: { i: number; p: number }[];
}

test("lastPrices picks each listed symbol's price path up where it stood; the others open as usual", async () => {
  const feed = await startMockFeed({ seed: 1, symbols: 5, rate: 2000, lastPrices: { AAPL: 101.5 } });
  try {
    const first = async (symbol: string) =>
      (await getJson<TradesPage>(feed, `/v2/stocks/${symbol}/trades`)).body;
    await until("trades of AAPL and MSFT", async () =>
      (await Promise.all(["AAPL", "MSFT"].map(first))).every((p) => p.trades.length > 0),
    );
    const [aapl, msft] = await Promise.all(["AAPL", "MSFT"].map(first));
    expect(aapl.trades[0].i).toBe(1);
    // Within a few seconds of a random walk of the price given (AAPL opens at 228 on the seed's path).
    expect(Math.abs(aapl.trades[0].p - 101.5)).toBeLessThan(0.5);
    expect(Math.abs(msft.trades[0].p - 415)).toBeLessThan(2);
  } finally {
    await feed.close();
  }
});

test("a price that is not a positive number is refused", async () => {
  await expect(startMockFeed({ lastPrices: { AAPL: 0 } })).rejects.toThrow(
    /lastPrices.AAPL must be a positive number/,
  );
});
