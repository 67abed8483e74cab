import { Topic } from "../../src/events/bus";
import { createPgEventBus, type PgEventBus } from "../../src/events/pg-bus";
import { WindowSize } from "../../src/windows/windows";
import { splitWindowsEvent, type WindowsEvent } from "../../src/windows/window.engine";
import { createTestDatabase } from "../support/database";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let a: PgEventBus;
let b: PgEventBus;

beforeAll(async () => {
  db = await createTestDatabase();
  [a, b] = await Promise.all([createPgEventBus(db.url), createPgEventBus(db.url)]);
});
afterAll(async () => {
  await Promise.all([a.close(), b.close()]);
  await db.drop();
});

const event = (i: number, symbols = 1): WindowsEvent => ({
  opened: [{ size: WindowSize.ONE_MINUTE, windowEnd: new Date(Date.UTC(2026, 0, 5, 14, 30, i)), count: 1 }],
  revised: [
    {
      size: WindowSize.ONE_MINUTE,
      windowEnd: new Date(Date.UTC(2026, 0, 5, 14, 30, i)),
      symbols: Array.from({ length: symbols }, (_, k) => `S${k}`),
    },
  ],
  finalUntil: null,
  watermark: new Date(Date.UTC(2026, 0, 5, 14, 31, i)),
});

async function take<T>(it: AsyncIterableIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) {
    out.push(v);
    if (out.length === n) break;
  }
  return out;
}

test("an event published on one replica reaches subscribers on both, Dates intact, in order", async () => {
  const onA = take(a.subscribe(Topic.WINDOWS), 50);
  const onB = take(b.subscribe(Topic.WINDOWS), 50);
  await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; i < 50; i++) a.publish(Topic.WINDOWS, event(i));
  const [gotA, gotB] = await Promise.all([onA, onB]);
  expect(gotB).toEqual(Array.from({ length: 50 }, (_, i) => event(i)));
  expect(gotA).toEqual(gotB);
  expect(gotB[0].watermark).toBeInstanceOf(Date);
});

test("an event too large for NOTIFY is delivered on its own replica only", async () => {
  const onA = take(a.subscribe(Topic.WINDOWS), 2);
  const onB = take(b.subscribe(Topic.WINDOWS), 1);
  await new Promise((r) => setTimeout(r, 50));
  a.publish(Topic.WINDOWS, event(1, 2000));
  a.publish(Topic.WINDOWS, event(2));
  const [gotA, gotB] = await Promise.all([onA, onB]);
  expect(gotA.map((e) => e.revised[0].symbols.length)).toEqual([2000, 1]);
  expect(gotB.map((e) => e.revised[0].symbols.length)).toEqual([1]);
});

test("a large engine event is split into pieces that each fit one NOTIFY and together say the same", () => {
  const e = {
    opened: Array.from({ length: 120 }, (_, i) => ({
      size: WindowSize.ONE_MINUTE,
      windowEnd: new Date(i * 10_000),
      count: 500,
    })),
    revised: [
      {
        size: WindowSize.FIVE_MINUTES,
        windowEnd: new Date(0),
        symbols: Array.from({ length: 1000 }, (_, k) => `SYM${k}`),
      },
    ],
    finalUntil: new Date(0),
    watermark: new Date(1),
  };
  const pieces = splitWindowsEvent(e);
  expect(pieces.every((p) => JSON.stringify(p).length < 7500)).toBe(true);
  expect(pieces.flatMap((p) => p.opened)).toEqual(e.opened);
  expect(pieces.flatMap((p) => p.revised.flatMap((r) => r.symbols))).toEqual(e.revised[0].symbols);
  expect(pieces.every((p) => p.watermark === e.watermark && p.finalUntil === e.finalUntil)).toBe(true);
});
