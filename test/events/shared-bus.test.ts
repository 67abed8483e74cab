import { Pool } from "pg";
import { PgListener } from "../../src/db/listener";
import { Topic } from "../../src/events/bus";
import { createPgEventBus } from "../../src/events/pg-bus";
import { WindowSize } from "../../src/windows/windows";
import { splitWindowsEvent, type WindowsEvent } from "../../src/windows/window.engine";
import { busEnv, openBus, SHARED_BUSES, type ClosableBus } from "../support/buses";
import { createTestDatabase } from "../support/database";

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

// Two replicas' buses on one database (and, for NATS, one subject).
describe.each(SHARED_BUSES)("over %s", (kind) => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let a: ClosableBus;
  let b: ClosableBus;
  // Symbols in an event too large for one NOTIFY (8000 bytes) or one NATS message (1 MiB by default).
  const big = kind === "nats" ? 200_000 : 2000;

  beforeAll(async () => {
    db = await createTestDatabase();
    const env = busEnv(kind);
    [a, b] = await Promise.all([openBus(env, db.url), openBus(env, db.url)]);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    await db.drop();
  });

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

  test("an event too large for one message is delivered on its own replica only", async () => {
    const onA = take(a.subscribe(Topic.WINDOWS), 2);
    const onB = take(b.subscribe(Topic.WINDOWS), 1);
    await new Promise((r) => setTimeout(r, 50));
    a.publish(Topic.WINDOWS, event(1, big));
    a.publish(Topic.WINDOWS, event(2));
    const [gotA, gotB] = await Promise.all([onA, onB]);
    expect(gotA.map((e) => e.revised[0].symbols.length)).toEqual([big, 1]);
    expect(gotB.map((e) => e.revised[0].symbols.length)).toEqual([1]);
  });

  test("a burst larger than one message arrives whole and in order", async () => {
    // About 300 KB: many NOTIFYs, a few NATS messages; fewer events than a subscriber's buffer holds.
    const n = 1000;
    const onB = take(b.subscribe(Topic.WINDOWS), n);
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < n; i++) a.publish(Topic.WINDOWS, event(i % 60, 1 + (i % 7)));
    const got = await onB;
    expect(got).toEqual(Array.from({ length: n }, (_, i) => event(i % 60, 1 + (i % 7))));
  });
});

test("a replica's subscribers receive its events at once, once each, even while NOTIFY cannot be sent", async () => {
  const db = await createTestDatabase();
  const listener = await PgListener.start({ url: db.url });
  // NOTIFY goes through a pool whose server is gone (nothing listens on port 1): every send fails.
  const gone = new Pool({ connectionString: "postgres://postgres@127.0.0.1:1/postgres" });
  gone.on("error", () => undefined);
  const own = await createPgEventBus({ listener, pool: gone });
  const other = await createPgEventBus(db.url);
  try {
    const onOwn = take(own.subscribe(Topic.WINDOWS), 3);
    const onOther = other.subscribe(Topic.WINDOWS);
    const reached: unknown[] = [];
    void (async () => {
      for await (const e of onOther) reached.push(e);
    })();
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 3; i++) own.publish(Topic.WINDOWS, event(i));
    expect(await onOwn).toEqual([event(0), event(1), event(2)]);
    // Nothing travelled, and nothing came twice once the sends had failed.
    const more = take(own.subscribe(Topic.WINDOWS), 1);
    own.publish(Topic.WINDOWS, event(9));
    expect(await more).toEqual([event(9)]);
    await new Promise((r) => setTimeout(r, 300));
    expect(reached).toEqual([]);
    await onOther.return?.();
  } finally {
    await Promise.all([own.close(), other.close(), listener.close(), gone.end()]);
    await db.drop();
  }
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
