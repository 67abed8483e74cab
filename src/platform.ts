import { jwtSecretOf, type Config } from "./config/config";
import { migrate } from "./db/data-source";
import { openDatabase, type Database } from "./db/database";
import { QuarantineRepo } from "./db/quarantine.repo";
import { startMockFeed, type MockFeed, type MockFeedOptions } from "./feed";
import { startIngest, type Ingest } from "./ingest";
import { chunksOf } from "./ingest/committed";
import { log, setLogLevel } from "./log";
import { seedDemoPrincipals } from "./policy/demo";
import { createTokenVerifier } from "./policy/tokens";
import { createEventBus, Topic, type EventBus } from "./events/bus";
import { createPgEventBus, type PgEventBus } from "./events/pg-bus";
import { buildTickgraphSchema } from "./schema/schema";
import { startServer, type RunningServer } from "./server/server";
import { splitWindowsEvent, WindowEngine } from "./windows/window.engine";

/** Trades per QUOTES event: at most ~140 bytes each encoded, so a piece stays under NOTIFY's 8000 bytes. */
const TRADES_PER_EVENT = 40;

export interface Platform {
  server: RunningServer;
  db: Database;
  /** The ingest loop (register commit listeners with `ingest.onCommit`); null with INGEST=off. */
  ingest: Ingest | null;
  /** The embedded mock feed; null with FEED_URL set or INGEST=off. */
  feed: MockFeed | null;
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
 * Starts the whole platform: database (embedded or DATABASE_URL), migrations, the feed (embedded unless
 * FEED_URL), the ingest loop and the window engine (unless INGEST=off), GraphQL server.
 */
export async function startPlatform(config: Config, opts: PlatformOptions = {}): Promise<Platform> {
  setLogLevel(config.logLevel);
  const db = await openDatabase(config);
  let server: RunningServer | undefined;
  let feed: MockFeed | null = null;
  let ingest: Ingest | null = null;
  let windows: WindowEngine | null = null;
  let pgBus: PgEventBus | null = null;
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
    if (config.ingest) {
      // Started before ingest, so that it sees every commit.
      windows = new WindowEngine(db.dataSource, {
        onWindows: (e) => splitWindowsEvent(e).forEach((piece) => bus.publish(Topic.WINDOWS, piece)),
      });
      await windows.start();
      if (!config.feedUrl) {
        feed = await startMockFeed({ ...opts.feed, key: config.feedKey, secret: config.feedSecret });
        // A demo on the mock market: principals for every role, so that tokens show what each may see.
        await seedDemoPrincipals(db.dataSource);
      }
      const mock = feed;
      ingest = startIngest({
        dataSource: db.dataSource,
        feedUrl: config.feedUrl ?? mock!.url,
        key: config.feedKey,
        secret: config.feedSecret,
        // New rows come back from the insert only while someone may subscribe to ticks.
        wantTrades: () => bus.listening(Topic.QUOTES),
        // The embedded feed starts over with every run: its ids restart at 1, so it is a new stream.
        ...(mock ? { stream: "embedded-mock", freshFeed: true, feedClock: () => mock.clock() } : {}),
      });
      const engine = windows;
      ingest.onCommit((e) => engine.onCommit(e));
      ingest.onCommit((e) => {
        for (const part of e.trades)
          for (const piece of chunksOf(part, TRADES_PER_EVENT)) bus.publish(Topic.QUOTES, piece);
      });
    }
    const running = ingest;
    server = await startServer({
      config,
      schema: buildTickgraphSchema({
        bus,
        ingest: { status: () => running?.status() ?? null, quarantine: new QuarantineRepo(db.dataSource) },
      }),
      dataSource: db.dataSource,
      verifier,
      bus,
      policy: opts.policy,
      ...(running ? { clock: running.clock, readiness: async () => ({ ingest: running.running }) } : {}),
    });
  } catch (err) {
    await ingest?.close();
    await windows?.idle();
    await feed?.close();
    await pgBus?.close();
    await db.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    server,
    db,
    ingest,
    feed,
    close() {
      closing ??= (async () => {
        await server.close();
        await ingest?.close();
        await windows?.idle();
        await feed?.close();
        await pgBus?.close();
        await db.close();
      })();
      return closing;
    },
  };
}
