import { DelayLine } from "../../src/events/delay-line";
import { setLogLevel } from "../../src/log";

beforeAll(() => setLogLevel("silent"));

test("releases what the cutoff passed, oldest first, whatever the order items came in", () => {
  const line = new DelayLine<string>("test");
  line.hold(30, "c");
  line.hold(10, "a");
  line.hold(20, "b");
  line.hold(40, "d");
  expect(line.release(5)).toEqual([]);
  expect(line.release(30)).toEqual(["a", "b", "c"]);
  expect(line.size).toBe(1);
  expect(line.release(null)).toEqual(["d"]);
  expect(line.size).toBe(0);
});

test("past its bound it drops the oldest and counts them", () => {
  const line = new DelayLine<number>("test", 3);
  for (let k = 1; k <= 5; k++) line.hold(k, k);
  expect(line.dropped).toBe(2);
  expect(line.release(100)).toEqual([3, 4, 5]);
});
