import { Client } from "pg";
import { IngestLease } from "../../src/ingest/lease";
import { setLogLevel } from "../../src/log";
import { createTestDatabase } from "../support/database";
import { until } from "./ingest.helpers";

let db: { url: string; drop(): Promise<void> };
let admin: Client;
const leases: IngestLease[] = [];
beforeAll(async () => {
  setLogLevel("silent");
  db = await createTestDatabase();
  admin = new Client({ connectionString: db.url });
  await admin.connect();
});
afterAll(async () => {
  await Promise.all(leases.map((l) => l.close()));
  await admin.end();
  await db.drop();
});

/** A lease whose work is a log of what it was told: "start", "stop" (lost) or "close" (given up). */
function contender(replica: string, stream = "feed-a") {
  const events: string[] = [];
  const lease = new IngestLease({
    url: db.url,
    stream,
    replica,
    retryMs: 100,
    onAcquired: async () => void events.push("start"),
    onReleased: async (graceful) => void events.push(graceful ? "close" : "stop"),
  });
  leases.push(lease);
  return { lease, events };
}

test("one holder per stream; another takes over when it gives up or its session dies, and the one that lost it stops at once", async () => {
  const a = contender("replica-a");
  await a.lease.start();
  expect(a.lease.held).toBe(true);
  expect(a.events).toEqual(["start"]);

  const b = contender("replica-b");
  await b.lease.start();
  expect(b.lease.held).toBe(false);
  expect(b.events).toEqual([]);
  await until("b sees a as the holder", () => (b.lease.holder === "replica-a" ? true : undefined));
  expect(a.lease.holder).toBe("replica-a");

  // Another stream is another lease.
  const other = contender("replica-e", "feed-b");
  await other.lease.start();
  expect(other.lease.held).toBe(true);

  // A gives up cleanly: its work is stopped before the lock goes, then B takes over.
  await a.lease.close();
  expect(a.events).toEqual(["start", "close"]);
  await until("b takes over", () => (b.lease.held ? true : undefined));
  expect(b.events).toEqual(["start"]);

  // B's session is killed (as Postgres does when a holder's process dies or its connection drops):
  // B stops its work at once.
  const c = contender("replica-c");
  await c.lease.start();
  expect(c.lease.held).toBe(false);
  const { rows } = await admin.query<{ ok: boolean }>(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = 'tickgraph-lease/replica-b' AND datname = current_database()`,
  );
  expect(rows).toEqual([{ ok: true }]);
  await until("b stops", () => (b.events.includes("stop") ? true : undefined));
  expect(b.events.slice(0, 2)).toEqual(["start", "stop"]);
  // Whoever tries first after that takes it: C, or B once it has reconnected (then as a new start).
  await until("someone takes over", () => (b.lease.held || c.lease.held ? true : undefined));
  expect([b.lease.held, c.lease.held].filter(Boolean)).toHaveLength(1);
  const [next, waiting] = b.lease.held ? [b, c] : [c, b];
  expect(next.events.at(-1)).toBe("start");
  await until("the other follows", () =>
    waiting.lease.connected && waiting.lease.holder === next.lease.holder ? true : undefined,
  );
  expect(waiting.lease.held).toBe(false);
});

test("a holder that cannot start its work gives the lease up, so that it is not held idle", async () => {
  let failures = 0;
  const lease = new IngestLease({
    url: db.url,
    stream: "feed-c",
    replica: "broken",
    retryMs: 100,
    onAcquired: async () => {
      failures++;
      throw new Error("cannot start");
    },
    onReleased: async () => {},
  });
  leases.push(lease);
  await lease.start();
  const d = contender("replica-d", "feed-c");
  await d.lease.start();
  await until("d takes the lease the broken one gave up", () => (d.lease.held ? true : undefined));
  expect(failures).toBeGreaterThan(0);
});

test("each holder claims the stream on the session holding the lock: a new epoch per take-over, on its checkpoint", async () => {
  const epochs: string[] = [];
  const claimant = (replica: string) => {
    const lease = new IngestLease({
      url: db.url,
      stream: "feed-e",
      replica,
      retryMs: 100,
      onAcquired: async (epoch) => void epochs.push(epoch),
      onReleased: async () => {},
    });
    leases.push(lease);
    return lease;
  };
  const row = async () =>
    (await admin.query(`SELECT epoch::text FROM ingest_checkpoints WHERE stream = 'feed-e'`)).rows[0]?.epoch;
  const f = claimant("replica-f");
  const g = claimant("replica-g");
  await f.start();
  await g.start();
  expect(epochs).toHaveLength(1);
  expect(await row()).toBe(epochs[0]);
  await f.close();
  await until("g takes over", () => (g.held ? true : undefined));
  expect(epochs).toHaveLength(2);
  expect(BigInt(epochs[1])).toBeGreaterThan(BigInt(epochs[0]));
  expect(await row()).toBe(epochs[1]);
});
