import { spawn, type ChildProcess } from "node:child_process";
import { createServer, connect as tcp } from "node:net";
import { createClient, type Client as WsClient } from "graphql-ws";
import WebSocket from "ws";
import { Topic } from "../../src/events/bus";
import { createNatsEventBus, type NatsEventBus } from "../../src/events/nats-bus";
import { newSubject } from "../support/buses";
import { grantEntitlements } from "../support/governance";
import { startReplica, startTestPlatform, type TestPlatform } from "../support/server";
import { record } from "../support/subscriptions";
import { until } from "../support/wait";

// A NATS server of this test's own (never the machine's shared one), killed and started again on the
// same port under a running pair of replicas: A ingests, B serves a quoteTicks subscriber.
const NATS_SERVER = "/usr/sbin/nats-server";
let port: number;
let nats: ChildProcess | null = null;
let t: TestPlatform;
let bus: NatsEventBus;
let b: Awaited<ReturnType<typeof startReplica>>;
let client: WsClient;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

const accepts = (p: number) =>
  new Promise<boolean>((r) => {
    const sock = tcp(p, "127.0.0.1");
    sock.once("connect", () => (sock.destroy(), r(true)));
    sock.once("error", () => r(false));
  });

async function startNats(): Promise<void> {
  nats = spawn(NATS_SERVER, ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  await until("the private NATS server accepts", () => accepts(port));
}

async function killNats(): Promise<void> {
  const proc = nats!;
  nats = null;
  await new Promise((r) => {
    proc.once("exit", r);
    proc.kill("SIGKILL");
  });
}

beforeAll(async () => {
  port = await freePort();
  await startNats();
  const env = { EVENT_BUS: "nats", NATS_URL: `nats://127.0.0.1:${port}`, NATS_SUBJECT: newSubject() };
  t = await startTestPlatform(
    { INGEST: "on", ...env },
    { feed: { seed: 5, symbols: 4, rate: 400, speed: 60, start: "2026-01-05T14:29:00Z" } },
  );
  await grantEntitlements(t, "rita");
  bus = await createNatsEventBus({ url: env.NATS_URL, subject: env.NATS_SUBJECT, reconnectMs: 100 });
  b = await startReplica(t, bus);
  client = createClient({
    url: b.wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: { authorization: `Bearer ${await t.token("rita")}` },
  });
});
afterAll(async () => {
  await client?.dispose();
  await b?.close();
  await bus?.close();
  await t?.close();
  if (nats) await killNats();
});

test("subscribers on the follower receive again within 5 s of NATS coming back, and nothing stored is lost", async () => {
  type Tick = { quoteTicks: { id: string } };
  const { body } = await t.gql(`{ instruments { symbol } }`);
  const symbols = (body.data.instruments as { symbol: string }[]).map((i) => i.symbol);
  const ticks = record<Tick>(client, `subscription($s: [String!]!) { quoteTicks(symbols: $s) { id } }`, {
    s: symbols,
  });
  const resyncs: Date[] = [];
  const resync = bus.subscribe(Topic.RESYNC);
  void (async () => {
    for await (const r of resync) resyncs.push(r.at);
  })();
  await until("ticks on B", () => ticks.events.length >= 20 || ticks.errors.length > 0);
  expect(ticks.errors).toEqual([]);
  await killNats();
  const storedAtKill = await count(b);
  // Ingest goes on without NATS: the database is the source of truth.
  await until("A stores trades while NATS is down", async () => (await count(b)) > storedAtKill + 50);
  const seenWhileDown = ticks.events.length;

  await startNats();
  const back = Date.now();
  await until("B's bus resyncs", () => resyncs.length > 0, 5_000);
  await until("ticks on B again", () => ticks.events.length > seenWhileDown + 5, 5_000 - (Date.now() - back));
  expect(ticks.errors).toEqual([]);
  expect(ticks.ended).toBe(false);

  // What A stored while NATS was down is all there, with no hole in the feed's ids.
  const gaps = (await b.dataSource.query(
    `SELECT count(*)::int AS n FROM (SELECT seq - lag(seq) OVER (PARTITION BY symbol ORDER BY seq) AS d FROM quotes) x WHERE d > 1`,
  )) as { n: number }[];
  expect(gaps[0].n).toBe(0);
  ticks.stop();
  await resync.return?.();
}, 60_000);

async function count(r: typeof b) {
  return ((await r.dataSource.query(`SELECT count(*)::int AS n FROM quotes`)) as { n: number }[])[0].n;
}
