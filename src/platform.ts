import { jwtSecretOf, type Config } from "./config/config";
import { migrate } from "./db/data-source";
import { openDatabase, type Database } from "./db/database";
import { QuarantineRepo } from "./db/quarantine.repo";
import { startMockFeed, type MockFeed, type MockFeedOptions } from "./feed";
import { startIngest, WATERMARK_DELAY_MS, type Ingest } from "./ingest";
import { chunksOf } from "./ingest/committed";
import { IngestLease, type ReplicaIngestStatus } from "./ingest/lease";
import { log, setLogLevel } from "./log";
import { seedDemoPrincipals } from "./policy/demo";
import { ObservedClock, type MarketClock } from "./core/market-clock";
import { createTokenVerifier } from "./policy/tokens";
import { createEventBus, Topic, type EventBus } from "./events/bus";
import { createPgEventBus, type PgEventBus } from "./events/pg-bus";
import { buildTickgraphSchema } from "./schema/schema";
import { checkPortFree, Server, type RunningServer } from "./server/server";
import { splitWindowsEvent, WindowEngine } from "./windows/window.engine";

/** Trades per QUOTES event: at most ~140 bytes each encoded, so a piece stays under NOTIFY's 8000 bytes. */
const TRADES_PER_EVENT = 40;
/** Checkpoint key of the embedded mock feed, which starts over with every run. */
const EMBEDDED_STREAM = "embedded-mock";

export interface Platform {
  server: RunningServer;
  db: Database;
  /**
   * The ingest loop while this replica holds the ingest lease (register commit listeners with
   * `ingest.onCommit`); null while another replica holds it, and with INGEST=off.
   */
  readonly ingest: Ingest | null;
  /** The embedded mock feed while this replica ingests from it; null with FEED_URL set or INGEST=off. */
  readonly feed: MockFeed | null;
  /** The ingest lease; null with INGEST=off. */
  lease: IngestLease | null;
  /**
   * The market clock delays are measured on: the ingest's while this replica holds the lease, else the
   * one observed from the committed checkpoint and window events. Never goes back across a take-over.
   */
  clock: MarketClock;
  /** Stops everything it started, newest first. Safe to call twice. */
  close(): Promise<void>;
}

export interface PlatformOptions {
  /** The embedded mock feed's market (seed, rate, speed, symbols, faults, start), when FEED_URL is unset. @default the feed's defaults */
  feed?: MockFeedOptions;
  /** Policy enforcement and the access log; false only for a benchmark measuring their cost. @default true */
  policy?: boolean;
}

/**
 * Starts the whole platform: database (embedded or DATABASE_URL), migrations, GraphQL server and, unless
 * INGEST=off, the contest for the ingest lease: the replica holding it runs the feed (embedded unless
 * FEED_URL), the ingest loop and the window engine; the others serve and take over when it dies.
 */
export async function startPlatform(config: Config, opts: PlatformOptions = {}): Promise<Platform> {
  setLogLevel(config.logLevel);
  await checkPortFree(config.port, config.host);
  const db = await openDatabase(config);
  let server: RunningServer | undefined;
  let feed: MockFeed | null = null;
  let ingest: Ingest | null = null;
  let windows: WindowEngine | null = null;
  let pgBus: PgEventBus | null = null;
  let lease: IngestLease | null = null;
  let follow: NodeJS.Timeout | undefined;
  let windowEvents: AsyncIterableIterator<unknown> | undefined;
  const stream = config.feedUrl ?? EMBEDDED_STREAM;
  // The market's now as the replicas that do not ingest see it: the committed checkpoint and the
  // watermarks of window events. The replica that ingests uses its own, which falls back to this one.
  const observed = new ObservedClock();
  const clock: MarketClock = {
    now: () => {
      if (!ingest) return observed.now();
      // Right after a take-over the restored checkpoint may be a batch behind what was observed.
      const own = ingest.clock.now();
      const seen = observed.latest;
      return seen && seen > own ? seen : own;
    },
  };
  let followerWatermark: Date | null = null;
  try {
    const applied = await migrate(db.dataSource);
    if (applied.length) log.info({ applied }, "migrations applied");
    const verifier = createTokenVerifier(
      config.jwksUrl ? { jwksUrl: config.jwksUrl } : { secret: jwtSecretOf(config) },
    );
    // One bus: what domain code publishes reaches the schema's topic subscriptions (on every replica
    // with EVENT_BUS=postgres).
    if (config.eventBus === "postgres") pgBus = await createPgEventBus(db.url);
    const bus: EventBus = pgBus ?? createEventBus();

    const startIngesting = async (epoch: string): Promise<void> => {
      // Started before ingest, so that it sees every commit; it loads how far windows got from the database.
      const engine = new WindowEngine(db.dataSource, {
        onWindows: (e) => splitWindowsEvent(e).forEach((piece) => bus.publish(Topic.WINDOWS, piece)),
      });
      windows = engine;
      await engine.start();
      // The embedded feed starts over with every run: its ids restart at 1, so it is a new stream.
      const mock = config.feedUrl
        ? null
        : (feed = await startMockFeed({ ...opts.feed, key: config.feedKey, secret: config.feedSecret }));
      const run = startIngest({
        dataSource: db.dataSource,
        feedUrl: config.feedUrl ?? mock!.url,
        feedRestUrl: config.feedRestUrl ?? mock!.restUrl,
        format: config.feedFormat,
        key: config.feedKey,
        secret: config.feedSecret,
        stream,
        // New rows come back from the insert only while someone may subscribe to ticks.
        wantTrades: () => bus.listening(Topic.QUOTES),
        clockFallback: observed,
        epoch,
        ...(mock ? { freshFeed: true, feedClock: () => mock.clock() } : {}),
      });
      run.onCommit((e) => engine.onCommit(e));
      run.onCommit((e) => {
        for (const part of e.trades)
          for (const piece of chunksOf(part, TRADES_PER_EVENT)) bus.publish(Topic.QUOTES, piece);
      });
      ingest = run;
    };
    /** Stops ingest: gracefully at close; at once when the lease is lost (another replica may write now). */
    const stopIngesting = async (graceful: boolean): Promise<void> => {
      const [run, engine, mock] = [ingest, windows, feed];
      if (run) {
        const w = run.status().watermark;
        if (w) observed.observe(w.getTime() + WATERMARK_DELAY_MS);
      }
      ingest = windows = feed = null;
      await (graceful ? run?.close() : run?.abort());
      await engine?.idle();
      await mock?.close();
    };

    // Every replica that does not ingest (a follower, or one with INGEST=off) measures delays on the
    // market time it can prove reached: the newest stored trade, the committed checkpoint, the
    // watermarks of window events. Read before it serves, and again every LEASE_RETRY_MS.
    const follower = async (): Promise<void> => {
      if (ingest) return;
      try {
        const [row]: { watermark: Date | null; latest: Date | null; newest: Date | null }[] =
          await db.dataSource.query(
            `SELECT (SELECT watermark FROM ingest_checkpoints WHERE stream = $1) AS watermark,
                    (SELECT max(watermark) FROM ingest_checkpoints) AS latest,
                    (SELECT max(event_time) FROM quotes) AS newest`,
            [stream],
          );
        if (ingest) return;
        followerWatermark = row.watermark ?? followerWatermark;
        // Any stream's checkpoint counts: they all follow the one market.
        if (row.latest) observed.observe(row.latest.getTime() + WATERMARK_DELAY_MS);
        if (row.newest) observed.observe(row.newest.getTime());
      } catch (err) {
        log.warn({ err: (err as Error).message }, "reading the market's progress failed");
      }
    };
    follow = setInterval(() => void follower(), config.leaseRetryMs);
    windowEvents = bus.subscribe(Topic.WINDOWS);
    void (async () => {
      for await (const e of windowEvents as AsyncIterableIterator<{ watermark: Date }>)
        if (!ingest) observed.observe(new Date(e.watermark).getTime() + WATERMARK_DELAY_MS);
    })();

    if (config.ingest) {
      // A demo on the mock market: principals for every role, so that tokens show what each may see.
      if (!config.feedUrl) await seedDemoPrincipals(db.dataSource);
      lease = new IngestLease({
        url: db.url,
        stream,
        replica: config.replica,
        retryMs: config.leaseRetryMs,
        onAcquired: startIngesting,
        onReleased: stopIngesting,
      });
      await lease.start();
    }
    // A replica knows the market's time before it serves (nothing delayed on a database never ingested).
    await follower();
    const contest = lease;
    const status = (): ReplicaIngestStatus | null => {
      if (!contest) return null;
      const own = ingest?.status();
      return {
        ...(own ?? {
          state: "following",
          feedUrl: config.feedUrl ?? "embedded",
          connected: false,
          watermark: followerWatermark,
          lagMs: null,
          accepted: 0,
          rejected: 0,
          duplicates: 0,
          ratePerSecond: 0,
        }),
        replica: config.replica,
        leaseHolder: contest.holder,
      };
    };
    server = await Server.start({
      config,
      schema: buildTickgraphSchema(),
      ingest: { status, quarantine: new QuarantineRepo(db.dataSource) },
      dataSource: db.dataSource,
      verifier,
      bus,
      policy: opts.policy,
      clock,
      // A replica that does not hold the lease is ready while it is able to take it over.
      ...(contest
        ? { readiness: async () => ({ ingest: ingest ? ingest.running : contest.connected }) }
        : {}),
    });
  } catch (err) {
    clearInterval(follow);
    await windowEvents?.return?.();
    await lease?.close();
    await pgBus?.close();
    await db.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  const running = server;
  return {
    server: running,
    db,
    get ingest() {
      return ingest;
    },
    get feed() {
      return feed;
    },
    lease,
    clock,
    close() {
      closing ??= (async () => {
        await running.close();
        clearInterval(follow);
        await windowEvents?.return?.();
        // Stops ingest (committing what it holds) before the lease is released.
        await lease?.close();
        await pgBus?.close();
        await db.close();
      })();
      return closing;
    },
  };
}
