import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client as WsClient } from "graphql-ws";
import WebSocket from "ws";
import { KEY_HEADER, SECRET_HEADER, type SnapshotsResponse } from "../../src/feed";
import { Role } from "../../src/policy/principal";
import { mintToken } from "../../src/policy/tokens";
import { expectMatchesHistory, testDb, until, type TestDb } from "../ingest/ingest.helpers";
import { collect } from "../subscriptions/live.helpers";
import { kill, killAll, run } from "../support/processes";
import { busEnv, SHARED_BUSES } from "../support/buses";

// Two `serve` replicas and the feed as real processes on one database, as in production: `npm test`
// builds dist first.
const SECRET = "failover-test-secret-of-at-least-32-bytes";

// Over each bus that carries events across replicas.
describe.each(SHARED_BUSES)("over %s", (kind) => {
  let db: TestDb;
  const clients: WsClient[] = [];
  beforeAll(async () => {
    db = await testDb();
  });
  afterAll(async () => {
    await Promise.all(clients.map(async (c) => c.dispose()));
    await killAll();
    await db.close();
  });

  async function gql(url: string, token: string, query: string, variables?: Record<string, unknown>) {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const body = (await res.json()) as { data?: any; errors?: unknown[] };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  }

  interface Status {
    state: string;
    replica: string;
    leaseHolder: string | null;
    watermark: string | null;
  }

  test("a subscriber on replica B gets the windows A ingests; kill -9 of A moves ingest to B with no gap and no duplicate", async () => {
    const feed = await run(
      [
        "feed",
        "--port",
        "0",
        "--seed",
        "17",
        "--rate",
        "600",
        "--symbols",
        "8",
        "--speed",
        "60",
        "--start",
        "2026-01-05T14:29:00Z",
      ],
      {},
      /stream: (ws:\/\/\S+)/,
    );
    const feedUrl = feed.match[1];
    const restUrl = feedUrl.replace(/^ws/, "http").replace(/\/v2\/iex$/, "");
    const bus = busEnv(kind);
    const env = (replica: string) => ({
      DATABASE_URL: db.url,
      FEED_URL: feedUrl,
      FEED_KEY: "tickgraph",
      FEED_SECRET: "tickgraph",
      JWT_SECRET: SECRET,
      HOST: "127.0.0.1",
      ...bus,
      REPLICA_NAME: replica,
      LEASE_RETRY_MS: "300",
      LOG_LEVEL: "info",
      DATA_DIR: mkdtempSync(join(tmpdir(), `tickgraph-${replica}-`)),
    });
    const serving = /serving GraphQL at (http:\/\/\S+)/;
    const custodian = await mintToken(SECRET, "carol", [Role.CUSTODIAN], 3600);
    const status = async (url: string): Promise<Status> =>
      (await gql(url, custodian, `{ ingestStatus { state replica leaseHolder watermark } }`)).ingestStatus;
    const leaseHeld = async (url: string) => {
      const text = await (await fetch(url.replace("/graphql", "/metrics"))).text();
      return /^tickgraph_ingest_lease_held (\d)/m.exec(text)?.[1];
    };

    const a = await run(["serve", "--port", "0"], env("a"), serving);
    const aUrl = a.match[1];
    const b = await run(["serve", "--port", "0"], env("b"), serving);
    const bUrl = b.match[1];
    await until("A streams", async () => ((await status(aUrl)).state === "streaming" ? true : undefined));
    expect(await status(aUrl)).toMatchObject({ replica: "a", leaseHolder: "a" });
    expect(await leaseHeld(aUrl)).toBe("1");
    await until("B follows A", async () => ((await status(bUrl)).leaseHolder === "a" ? true : undefined));
    expect(await status(bUrl)).toMatchObject({ state: "following", replica: "b" });
    expect(await leaseHeld(bUrl)).toBe("0");
    // A follower is ready: it serves, and it can take over.
    expect((await fetch(bUrl.replace("/graphql", "/readyz"))).status).toBe(200);

    // A subscriber on B, entitled to real-time data, gets the windows A's engine computes.
    const owner = await mintToken(SECRET, "olga", [Role.OWNER], 3600);
    await gql(bUrl, owner, `mutation { grantEntitlement(principal: "rita", entitlement: REALTIME) { id } }`);
    const client = createClient({
      url: bUrl.replace(/^http/, "ws"),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${await mintToken(SECRET, "rita", [Role.USER], 3600)}` },
    });
    clients.push(client);
    type Window = { windowAggregates: { symbol: string; windowEnd: string; delayed: boolean } };
    const windows = `subscription { windowAggregates(size: ONE_MINUTE, symbols: ["AAPL", "MSFT"]) {
      symbol windowEnd delayed } }`;
    const beforeKill = await collect<Window>(client, windows, (e) => e.length >= 4);
    expect(beforeKill.every((e) => !e.data.windowAggregates.delayed)).toBe(true);
    expect(a.out.some((l) => l.includes("ingest lease taken"))).toBe(true);

    // kill -9 of A: its session ends, the lock with it, and B takes over.
    const [{ killedAt }] = await db.ds.query(`SELECT now() AS "killedAt"`);
    await kill(a.proc, "SIGKILL");
    await until(
      "B ingests",
      async () => {
        const s = await status(bUrl);
        return s.leaseHolder === "b" && s.state === "streaming" ? true : undefined;
      },
      20_000,
    );
    expect(await leaseHeld(bUrl)).toBe("1");
    expect(b.out.some((l) => l.includes("ingest lease taken"))).toBe(true);

    // B's own engine now computes the windows its subscriber gets.
    const lastEnd = Math.max(...beforeKill.map((e) => Date.parse(e.data.windowAggregates.windowEnd)));
    await collect<Window>(client, windows, (e) =>
      e.some((x) => Date.parse(x.data.windowAggregates.windowEnd) > lastEnd + 10_000),
    );

    // B catches up past what the feed had once it took over, then stops.
    const symbols = ["AAPL", "MSFT", "NVDA"];
    const snapshot = (await (
      await fetch(`${restUrl}/v2/stocks/snapshots?symbols=${symbols.join(",")}`, {
        headers: { [KEY_HEADER]: "tickgraph", [SECRET_HEADER]: "tickgraph" },
      })
    ).json()) as SnapshotsResponse;
    await until("B caught up", async () => {
      const [row] = await db.ds.query(`SELECT last_ids FROM ingest_checkpoints`);
      return symbols.every((s) => row.last_ids[s] > snapshot[s].latestTrade!.i) ? true : undefined;
    });
    await kill(b.proc, "SIGTERM");

    // Every trade of the covered span, per symbol, is stored exactly once (from the first A stored to the
    // checkpoint, no hole), and none came back LATE: the feed sent none late, so LATE here would be a trade
    // lost to the failover. (A started some seconds after the feed: at --speed 60 its first backfill may
    // not reach back to the feed's first trade, and needs not.)
    const [{ last_ids }] = await db.ds.query(`SELECT last_ids FROM ingest_checkpoints`);
    // The span starts with what A stored, received before it was killed.
    const firsts: { symbol: string; first: number; received: Date }[] = await db.ds.query(
      `SELECT DISTINCT ON (symbol) symbol, seq::int AS first, received_at AS received FROM quotes ORDER BY symbol, seq`,
    );
    for (const f of firsts) expect(f.received.getTime()).toBeLessThan(killedAt.getTime());
    const from = Object.fromEntries(firsts.map((f) => [f.symbol, f.first]));
    const { stored, late } = await expectMatchesHistory(db.ds, { restUrl }, last_ids, from);
    expect(late).toBe(0);
    expect(stored).toBe(
      Object.entries(last_ids as Record<string, number>).reduce(
        (n, [s, id]) => n + id - (from[s] ?? 1) + 1,
        0,
      ),
    );
    // What was traded while nobody held the lease reached B over the feed's REST history.
    const [{ backfilled }] = await db.ds.query(
      `SELECT count(*)::int AS backfilled FROM quotes WHERE source = 'backfill' AND received_at >= $1`,
      [killedAt],
    );
    expect(backfilled).toBeGreaterThan(0);
    await kill(feed.proc, "SIGTERM");
  }, 60_000);
});
