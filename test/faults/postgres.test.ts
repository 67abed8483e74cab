import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient, type Client as WsClient } from "graphql-ws";
import WebSocket from "ws";
import { KEY_HEADER, SECRET_HEADER, type RestTrade, type SnapshotsResponse } from "../../src/feed";
import { Role } from "../../src/policy/principal";
import { mintToken } from "../../src/policy/tokens";
import { history, storedTime } from "../ingest/ingest.helpers";
import { PrivatePostgres } from "../support/private-postgres";
import { kill, killAll, run, type Proc } from "../support/processes";
import { until } from "../support/wait";

// `serve` as a real process (`npm test` builds dist first) with EVENT_BUS=postgres, fed by a `tickgraph
// feed` process, on a Postgres cluster of this file's own that it restarts, crashes and stops: never
// the machine's shared server. A live graphql-ws subscriber watches on one socket throughout.
const SECRET = "faults-test-secret-of-at-least-32-bytes!";
const GRACE_SECONDS = 4;
const SYMBOLS = 6;

let pg: PrivatePostgres;
const dirs: string[] = [];
const clients: WsClient[] = [];

beforeAll(async () => {
  pg = await PrivatePostgres.create();
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map(async (c) => c.dispose()));
  await killAll();
  await pg?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 60_000);

interface Feed {
  proc: Proc["proc"];
  url: string;
  restUrl: string;
}

/**
 * A `tickgraph feed` process, repeating some trades. (No malformed frames: a quarantine row Postgres
 * loses in a crash cannot be received again, see the README's Operations.)
 */
async function startFeed(): Promise<Feed> {
  const f = await run(
    [
      "feed",
      "--port",
      "0",
      "--seed",
      "21",
      "--rate",
      "300",
      "--symbols",
      String(SYMBOLS),
      "--faults",
      "duplicate=0.01",
    ],
    {},
    /stream: (ws:\/\/\S+)/,
  );
  const url = f.match[1];
  return { proc: f.proc, url, restUrl: url.replace(/^ws/, "http").replace(/\/v2\/iex$/, "") };
}

/** A fresh database on the private cluster. */
async function database(name: string): Promise<string> {
  const c = await pg.client();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  return pg.url.replace(/\/postgres$/, `/${name}`);
}

function serve(databaseUrl: string, feed: Feed, env: Record<string, string> = {}): Promise<Proc> {
  const dataDir = mkdtempSync(join(tmpdir(), "tickgraph-faults-"));
  dirs.push(dataDir);
  return run(
    ["serve", "--port", "0"],
    {
      DATABASE_URL: databaseUrl,
      FEED_URL: feed.url,
      FEED_KEY: "tickgraph",
      FEED_SECRET: "tickgraph",
      JWT_SECRET: SECRET,
      HOST: "127.0.0.1",
      EVENT_BUS: "postgres",
      LEASE_RETRY_MS: "300",
      SHUTDOWN_GRACE_SECONDS: String(GRACE_SECONDS),
      LOG_LEVEL: "info",
      DATA_DIR: dataDir,
      ...env,
    },
    /serving GraphQL at (http:\/\/\S+)/,
  );
}

/** Sends `signal` and waits for the exit; fails when the process is still running after `ms`. */
async function stop(p: Proc, signal: NodeJS.Signals, ms = 30_000): Promise<void> {
  const exited = new Promise<void>((resolve) => p.proc.once("exit", () => resolve()));
  p.proc.kill(signal);
  await until(`exit on ${signal}`, () => p.proc.exitCode !== null || p.proc.signalCode !== null, ms);
  await exited;
}

/** The JSON log lines a process wrote at error level or above. */
const errorsIn = (p: Proc) =>
  p.out.filter((l) => {
    try {
      return (JSON.parse(l) as { level?: number }).level! >= 50;
    } catch {
      return false;
    }
  });

/** A query of one stored trade, as rita (granted REALTIME by `subscriber`). */
async function query(url: string) {
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${await mintToken(SECRET, "rita", [Role.USER], 3600)}`,
    },
    body: JSON.stringify({ query: `{ quotes(first: 1) { nodes { symbol } } }` }),
  });
  return (await res.json()) as { data: { quotes: { nodes: unknown[] } }; errors?: unknown[] };
}

const readyz = async (url: string) => (await fetch(url.replace("/graphql", "/readyz"))).status;

interface Subscriber {
  ticks: { at: number; symbol: string; seq: number }[];
  connects: number;
  closes: { code: number; reason: string }[];
}

/** rita, granted REALTIME, subscribed to every symbol's ticks on one socket that is never re-opened. */
async function subscriber(url: string, symbols: string[]): Promise<Subscriber> {
  const owner = await mintToken(SECRET, "olga", [Role.OWNER], 3600);
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${owner}` },
    body: JSON.stringify({
      query: `mutation { grantEntitlement(principal: "rita", entitlement: REALTIME) { id } }`,
    }),
  });
  expect(((await res.json()) as { errors?: unknown }).errors).toBeUndefined();
  const s: Subscriber = { ticks: [], connects: 0, closes: [] };
  const client = createClient({
    url: url.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: { authorization: `Bearer ${await mintToken(SECRET, "rita", [Role.USER], 3600)}` },
    on: {
      connected: () => s.connects++,
      closed: (e) => {
        const { code, reason } = e as { code: number; reason: string };
        s.closes.push({ code, reason });
      },
    },
  });
  clients.push(client);
  client.subscribe<{ quoteTicks: { symbol: string; seq: string } }>(
    {
      query: `subscription($s: [String!]!) { quoteTicks(symbols: $s) { symbol seq } }`,
      variables: { s: symbols },
    },
    {
      next: (r) => {
        if (r.data)
          s.ticks.push({ at: Date.now(), symbol: r.data.quoteTicks.symbol, seq: +r.data.quoteTicks.seq });
      },
      error: () => undefined,
      complete: () => undefined,
    },
  );
  return s;
}

/** The feed's symbols and the id of each one's latest trade now. */
async function feedLatest({ restUrl }: Feed): Promise<Record<string, number>> {
  const headers = { [KEY_HEADER]: "tickgraph", [SECRET_HEADER]: "tickgraph" };
  const assets = (await (await fetch(`${restUrl}/v2/assets`, { headers })).json()) as { symbol: string }[];
  const snap = (await (
    await fetch(`${restUrl}/v2/stocks/snapshots?symbols=${assets.map((a) => a.symbol).join(",")}`, {
      headers,
    })
  ).json()) as SnapshotsResponse;
  return Object.fromEntries(Object.entries(snap).map(([s, v]) => [s, v.latestTrade!.i]));
}

/** Sums of the ingest's Prometheus counters. */
async function ingestCounts(url: string) {
  const text = await (await fetch(url.replace("/graphql", "/metrics"))).text();
  const sum = (name: string) =>
    [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "gm"))].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
  const one = (name: string, labels: string) =>
    Number(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
  return {
    received: sum("tickgraph_ingest_received_total"),
    trades: one("tickgraph_ingest_accepted_total", 'kind="trade"'),
    quotes: one("tickgraph_ingest_accepted_total", 'kind="quote"'),
    rejected: sum("tickgraph_ingest_rejected_total"),
    duplicates: sum("tickgraph_ingest_duplicates_total"),
    dropped: sum("tickgraph_ingest_dropped_total"),
    lost: sum("tickgraph_ingest_lost_total"),
  };
}

test("Postgres restarted (fast, then immediate) and down 30 s under serve: ready again, the subscriber receives again on the same socket within 5 s, every trade stored once, the counts exact", async () => {
  const feed = await startFeed();
  const dbUrl = await database("restarts");
  const s = await serve(dbUrl, feed);
  const url = s.match[1];
  const symbols = Object.keys(await feedLatest(feed));
  expect(symbols).toHaveLength(SYMBOLS);
  const sub = await subscriber(url, symbols);
  await until("ticks", () => sub.ticks.length > 50);

  for (const fault of ["fast", "immediate", "down"] as const) {
    const since = s.out.length;
    await pg.stop(fault === "immediate" ? "immediate" : "fast");
    if (fault === "down") {
      // Not ready while Postgres is away, yet alive and serving the socket.
      await until("not ready", async () => (await readyz(url)) === 503);
      expect((await fetch(url.replace("/graphql", "/healthz"))).status).toBe(200);
      // Queries fail at once, masked.
      expect((await query(url)).errors).toEqual([
        expect.objectContaining({ extensions: expect.objectContaining({ code: "INTERNAL_SERVER_ERROR" }) }),
      ]);
      await sleep(30_000); // the outage itself
      expect(sub.closes).toEqual([]);
    }
    await pg.start();
    const back = Date.now();
    // Anything that arrives from now on was committed after Postgres came back.
    await until(
      `ticks again after the ${fault} outage`,
      () => sub.ticks.some((t) => t.at > back),
      5000,
    ).catch((err: Error) => {
      // What serve said since the outage began, to tell which part did not come back.
      throw new Error(`${err.message}; serve logged since:\n${s.out.slice(since).join("\n")}`);
    });
    await until(`ready again after the ${fault} outage`, async () => (await readyz(url)) === 200);
    expect((await query(url)).data.quotes.nodes).toHaveLength(1);
  }
  expect(sub.connects).toBe(1);
  expect(sub.closes).toEqual([]);
  // Each outage is logged once by the lease (a warning as it starts, a line as it ends), not per retry.
  const logged = (msg: string) => s.out.filter((l) => l.includes(`"msg":"${msg}"`)).length;
  const unreachable = logged("ingest lease: database unreachable");
  expect(unreachable).toBeGreaterThanOrEqual(1); // the 30 s outage at least
  expect(unreachable).toBeLessThanOrEqual(3);
  expect(logged("ingest lease: database reachable again")).toBe(unreachable);

  // Ingest catches up past what the feed had after the last outage, over its REST history.
  const latest = await feedLatest(feed);
  const app = await pg.client("restarts");
  try {
    const checkpoint = async () =>
      (await app.query(`SELECT last_ids FROM ingest_checkpoints`)).rows[0].last_ids as Record<string, number>;
    await until(
      "ingest caught up",
      async () => {
        const ids = await checkpoint();
        return symbols.every((sym) => ids[sym] >= latest[sym]);
      },
      30_000,
    );
    const upTo = await checkpoint();
    const hist = new Map<string, RestTrade[]>();
    for (const sym of symbols) hist.set(sym, await history(feed.restUrl, sym));
    // The feed stops: once ingest has written what it holds, the counts settle.
    await kill(feed.proc, "SIGTERM");
    let c = await ingestCounts(url);
    const accounted = () => c.trades + c.quotes + c.rejected + c.duplicates + c.dropped;
    await until(
      "ingest settled",
      async () => {
        c = await ingestCounts(url);
        return accounted() === c.received;
      },
      15_000,
    ).catch(() => expect(accounted()).toBe(c.received));
    expect(c.received).toBeGreaterThan(0);
    expect(c.duplicates).toBeGreaterThan(0); // overlapping backfills after each outage

    // Against the database: every accepted trade is one row, but for those the crash (immediate stop)
    // took from Postgres after it acknowledged them, which were then received and stored again.
    const { rows } = await app.query(
      `SELECT (SELECT count(*) FROM quotes)::int AS quotes, (SELECT count(*) FROM quarantine)::int AS quarantined`,
    );
    expect(rows[0]).toEqual({ quotes: c.trades - c.lost, quarantined: c.rejected });

    // Per symbol, ids contiguous from the first stored (no gap, no duplicate), each the feed's trade.
    const stored = await app.query(
      `SELECT symbol, seq::int AS seq, price, size,
              to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time
       FROM quotes ORDER BY symbol, seq`,
    );
    for (const sym of symbols) {
      const mine = stored.rows.filter((r) => r.symbol === sym);
      expect(mine.length).toBeGreaterThan(0);
      const first = mine[0].seq;
      expect(mine.map((r) => r.seq)).toEqual(mine.map((_, k) => first + k));
      expect(mine[mine.length - 1].seq).toBeGreaterThanOrEqual(upTo[sym]);
      const byId = new Map(hist.get(sym)!.map((t) => [t.i, t]));
      const known = mine.filter((r) => byId.has(r.seq));
      expect(known.length).toBeGreaterThanOrEqual(upTo[sym] - first + 1);
      expect(known).toEqual(
        known.map((r) => {
          const t = byId.get(r.seq)!;
          return { symbol: sym, seq: t.i, price: t.p, size: t.s, time: storedTime(t.t) };
        }),
      );
    }

    // A normal stop: the socket closed with 1001, the open subscription's END entry written with the
    // events it delivered, status 0, nothing at error level from the signal on.
    await stop(s, "SIGTERM");
    expect(s.proc.exitCode).toBe(0);
    expect(sub.closes).toEqual([{ code: 1001, reason: "Going away" }]);
    const shutdown = s.out.findIndex((l) => l.includes('"shutting down"'));
    expect(shutdown).toBeGreaterThan(0);
    expect(errorsIn({ ...s, out: s.out.slice(shutdown) })).toEqual([]);
    const entries = await app.query(
      `SELECT phase, row_count FROM access_log WHERE principal = 'rita' AND operation = 'SUBSCRIPTION' ORDER BY seq`,
    );
    expect(entries.rows).toEqual([
      { phase: "START", row_count: null },
      { phase: "END", row_count: sub.ticks.length },
    ]);
  } finally {
    await app.end();
  }
}, 240_000);

test("SIGTERM with Postgres down exits within the grace period: stopped, then frozen (accepting connections, never answering)", async () => {
  const feed = await startFeed();
  const dbUrl = await database("stopping");
  // Two replicas: the second stands by to be stopped in the second outage.
  const a = await serve(dbUrl, feed, { REPLICA_NAME: "a" });
  const b = await serve(dbUrl, feed, { REPLICA_NAME: "b" });
  const symbols = Object.keys(await feedLatest(feed));
  const subA = await subscriber(a.match[1], symbols);
  await until("ticks on a", () => subA.ticks.length > 20);

  // Stopped: connections are refused.
  await pg.stop("fast");
  const tA = Date.now();
  await stop(a, "SIGTERM", GRACE_SECONDS * 1000);
  expect(Date.now() - tA).toBeLessThan(GRACE_SECONDS * 1000);
  expect(subA.closes).toEqual([{ code: 1001, reason: "Going away" }]);

  await pg.start();
  await until("b ready", async () => (await readyz(b.match[1])) === 200);
  const subB = await subscriber(b.match[1], symbols);
  await until("ticks on b", () => subB.ticks.length > 20);
  // Frozen: what waits on Postgres waits for ever; the grace period ends the stop.
  pg.freeze();
  try {
    const tB = Date.now();
    await stop(b, "SIGTERM", (GRACE_SECONDS + 5) * 1000);
    expect(Date.now() - tB).toBeLessThan((GRACE_SECONDS + 5) * 1000);
    expect(b.proc.exitCode).toBe(1);
    expect(b.out.some((l) => l.includes(`stop did not complete within ${GRACE_SECONDS} s`))).toBe(true);
    expect(subB.closes).toEqual([{ code: 1001, reason: "Going away" }]);
  } finally {
    pg.thaw();
  }
  await kill(feed.proc, "SIGTERM");
}, 180_000);
