import { ConfigError, jwtSecretOf, type Config } from "./config/config";
import { Disposer } from "./core/disposer";
import type { MarketClock } from "./core/market-clock";
import { chunksOf, noTrades, rowCount } from "./core/trades";
import { CheckpointsRepo, type StoredMarket } from "./db/checkpoints.repo";
import { migrate } from "./db/data-source";
import { openDatabase, type Database } from "./db/database";
import { PgListener } from "./db/listener";
import { QuarantineRepo } from "./db/quarantine.repo";
import { poolOf } from "./db/sql";
import { createEventBus, Topic, type EventBus } from "./events/bus";
import { createNatsEventBus } from "./events/nats-bus";
import { createPgEventBus } from "./events/pg-bus";
import { DEFAULT_FEED_RATE, startMockFeed, type MockFeed, type MockFeedOptions } from "./feed";
import { startIngest, type InDoubtPart, type Ingest } from "./ingest";
import { IngestLease, type ReplicaIngestStatus } from "./ingest/lease";
import { MarketFollower } from "./ingest/market-follower";
import { log, setLogLevel } from "./log";
import { seedDemoPrincipals } from "./policy/demo";
import { createTokenVerifier } from "./policy/tokens";
import { buildTickgraphSchema } from "./schema/schema";
import { checkPortFree, Server, type RunningServer } from "./server/server";
import { splitWindowsEvent, WindowEngine } from "./windows/window.engine";

/** Trades per QUOTES event: at most ~140 bytes each encoded, so a piece stays under NOTIFY's 8000 bytes. */
const TRADES_PER_EVENT = 40;
/** Checkpoint key of the embedded mock feed, which starts over with every run. */
const EMBEDDED_STREAM = "embedded-mock";

/**
 * Wall seconds of its trades and quotes the embedded feed keeps for the ingest's backfill (at least
 * EMBEDDED_HISTORY_MIN of each). The history fills up within these first minutes and memory stays flat
 * after; the feed alone (`tickgraph feed`) keeps far more for REST clients.
 */
const EMBEDDED_HISTORY_SECONDS = 180;
const EMBEDDED_HISTORY_MIN = 50_000;

/** The embedded feed's options: its history bounded by EMBEDDED_HISTORY_SECONDS unless set. */
function embeddedFeed(feed: MockFeedOptions): MockFeedOptions {
  const rows = Math.max(
    EMBEDDED_HISTORY_MIN,
    Math.ceil((feed.rate ?? DEFAULT_FEED_RATE) * EMBEDDED_HISTORY_SECONDS),
  );
  return {
    historyTotal: rows,
    quoteHistoryTotal: Math.max(1, Math.ceil(rows * (feed.quoteRatio ?? 1))),
    ...feed,
  };
}

/**
 * The embedded market, started again on a database that holds trades, continues what is stored: its clock
 * resumes after the newest stored trade (or at `start`/now when later) and each symbol's price from its
 * last stored trade, so that no second price path is woven into stored history. With `strict`, a `start`
 * before the newest stored trade is refused; otherwise (a replica taking over) it is moved past it.
 */
export function continueMarket(
  feed: MockFeedOptions,
  stored: StoredMarket,
  nowMs: number,
  strict: boolean,
): MockFeedOptions {
  if (!stored.newestTrade) return feed;
  const after = stored.newestTrade.getTime() + 1;
  const requested = feed.start === undefined ? undefined : new Date(feed.start).getTime();
  if (strict && requested !== undefined && requested < after)
    throw new ConfigError(
      `--feed-start ${new Date(requested).toISOString()} lies before the newest stored trade ` +
        `(${stored.newestTrade.toISOString()}): the embedded market would write a second price path into ` +
        `stored history. Leave --feed-start out to continue the stored market, start at or after ` +
        `${new Date(after).toISOString()}, or use an empty database (another --data-dir or DATABASE_URL).`,
    );
  return {
    ...feed,
    start: new Date(Math.max(requested ?? nowMs, after)),
    lastPrices: stored.lastPrices,
  };
}

export interface PlatformOptions {
  /** The embedded mock feed's market (seed, rate, speed, symbols, faults, start), when FEED_URL is unset. @default the feed's defaults */
  feed?: MockFeedOptions;
  /** Policy enforcement and the access log; false only for a benchmark measuring their cost. @default true */
  policy?: boolean;
}

/** What the replica holding the ingest lease runs. */
interface Ingesting {
  ingest: Ingest;
  windows: WindowEngine;
  /** The embedded mock feed, unless FEED_URL is set. */
  feed: MockFeed | null;
}

type PlatformState =
  | { phase: "starting" }
  | { phase: "running"; server: RunningServer }
  | { phase: "stopping"; server: RunningServer }
  | { phase: "stopped"; server: RunningServer };

/**
 * The whole platform: database (embedded or DATABASE_URL), migrations, GraphQL server and, unless
 * INGEST=off, the contest for the ingest lease: the replica holding it runs the feed (embedded unless
 * FEED_URL), the ingest loop and the window engine; the others serve and take over when it dies.
 * Composes the parts; each part holds its own logic.
 */
export class Platform {
  private state: PlatformState = { phase: "starting" };
  private readonly disposer = new Disposer();
  private ingesting: Ingesting | null = null;
  /** The ingest lease; null with INGEST=off. */
  lease: IngestLease | null = null;
  /**
   * The market clock delays are measured on: the ingest's while this replica holds the lease, else the
   * one observed from the committed checkpoint and window events. Never goes back across a take-over.
   */
  readonly clock: MarketClock;
  private readonly follower: MarketFollower;
  private readonly stream: string;
  /** The last trade id per symbol this process committed, carried from one ingest run to the next. */
  private committedIds: Record<string, number> = {};
  /** Batches the last ingest run gave up with their COMMIT's outcome unknown: the next run settles them. */
  private inDoubt: InDoubtPart[] = [];

  private constructor(
    private readonly config: Config,
    private readonly opts: PlatformOptions,
    readonly db: Database,
  ) {
    this.stream = config.feedUrl ?? EMBEDDED_STREAM;
    this.follower = new MarketFollower(
      new CheckpointsRepo(db.dataSource),
      this.stream,
      () => !!this.ingesting,
    );
    const observed = this.follower.observed;
    this.clock = {
      now: () => {
        const own = this.ingesting?.ingest.clock.now();
        if (!own) return observed.now();
        // Right after a take-over the restored checkpoint may be a batch behind what was observed.
        const seen = observed.latest;
        return seen && seen > own ? seen : own;
      },
    };
    this.disposer.add("database", () => db.close());
  }

  static async start(config: Config, opts: PlatformOptions = {}): Promise<Platform> {
    setLogLevel(config.logLevel);
    await checkPortFree(config.port, config.host);
    const platform = new Platform(config, opts, await openDatabase(config));
    try {
      await platform.startParts();
    } catch (err) {
      await platform.disposer.dispose();
      throw err;
    }
    return platform;
  }

  /** The GraphQL server (stopped too once the platform is). */
  get server(): RunningServer {
    if (this.state.phase === "starting") throw new Error("the platform is starting");
    return this.state.server;
  }

  /**
   * The ingest loop while this replica holds the ingest lease (register commit listeners with
   * `ingest.onCommit`); null while another replica holds it, and with INGEST=off.
   */
  get ingest(): Ingest | null {
    return this.ingesting?.ingest ?? null;
  }

  /** The embedded mock feed while this replica ingests from it; null with FEED_URL set or INGEST=off. */
  get feed(): MockFeed | null {
    return this.ingesting?.feed ?? null;
  }

  private async startParts(): Promise<void> {
    const { config, db } = this;
    const applied = await migrate(db.dataSource);
    if (applied.length) log.info({ applied }, "migrations applied");
    const verifier = createTokenVerifier(
      config.jwksUrl ? { jwksUrl: config.jwksUrl } : { secret: jwtSecretOf(config) },
    );
    // One LISTEN connection for the process: policy changes and, with EVENT_BUS=postgres, events.
    const listener = await PgListener.start({ url: db.url });
    this.disposer.add("LISTEN connection", () => listener.close());
    // One bus: what domain code publishes reaches the schema's topic subscriptions (on every replica
    // with EVENT_BUS=postgres or nats).
    let bus: EventBus;
    if (config.eventBus === "postgres" || config.eventBus === "nats") {
      const shared =
        config.eventBus === "postgres"
          ? await createPgEventBus({ listener, pool: poolOf(db.dataSource) })
          : await createNatsEventBus({
              url: config.natsUrl,
              subject: config.natsSubject,
              name: `tickgraph ${config.replica}`,
            });
      this.disposer.add("event bus", () => shared.close());
      bus = shared;
    } else bus = createEventBus();

    // A replica knows the market's time before it serves (nothing delayed on a database never ingested).
    await this.follower.start(bus, config.leaseRetryMs);
    this.disposer.add("market follower", () => this.follower.close());

    if (config.ingest && !config.feedUrl)
      continueMarket(this.opts.feed ?? {}, await this.storedMarket(), Date.now(), true);
    if (config.ingest) {
      // A demo on the mock market: principals for every role, so that tokens show what each may see.
      if (!config.feedUrl) await seedDemoPrincipals(db.dataSource);
      const lease = new IngestLease({
        url: db.url,
        stream: this.stream,
        replica: config.replica,
        retryMs: config.leaseRetryMs,
        onAcquired: (epoch) => this.startIngesting(bus, epoch),
        onReleased: (graceful) => this.stopIngesting(graceful),
      });
      this.lease = lease;
      // Closing the lease stops ingest (committing what it holds) before the lease is released.
      this.disposer.add("ingest lease", () => lease.close());
      await lease.start();
    }
    const lease = this.lease;
    const server = await Server.start({
      config,
      schema: buildTickgraphSchema(),
      ingest: { status: () => this.status(), quarantine: new QuarantineRepo(db.dataSource) },
      dataSource: db.dataSource,
      verifier,
      bus,
      listener,
      policy: this.opts.policy,
      clock: this.clock,
      // A replica that does not hold the lease is ready while it is able to take it over.
      ...(lease
        ? { readiness: async () => ({ ingest: this.ingest ? this.ingest.running : lease.connected }) }
        : {}),
    });
    this.disposer.add("server", () => server.close());
    this.state = { phase: "running", server };
  }

  /** The lease is taken: the window engine, the embedded feed and the ingest loop start, in that order. */
  private async startIngesting(bus: EventBus, epoch: string): Promise<void> {
    const { config, db } = this;
    // Started before ingest, so that it sees every commit; it loads how far windows got from the database.
    const windows = new WindowEngine(db.dataSource, {
      onWindows: (e) => splitWindowsEvent(e).forEach((piece) => bus.publish(Topic.WINDOWS, piece)),
    });
    await windows.start();
    // The embedded feed starts over with every run: its ids restart at 1 (the ingest numbers them after
    // the stored ones), its clock and prices continue the stored market.
    const feed = config.feedUrl
      ? null
      : await startMockFeed({
          ...continueMarket(embeddedFeed(this.opts.feed ?? {}), await this.storedMarket(), Date.now(), false),
          key: config.feedKey,
          secret: config.feedSecret,
        });
    const ingest = startIngest({
      dataSource: db.dataSource,
      feedUrl: config.feedUrl ?? feed!.url,
      feedRestUrl: config.feedRestUrl ?? feed!.restUrl,
      format: config.feedFormat,
      key: config.feedKey,
      secret: config.feedSecret,
      stream: this.stream,
      // New rows come back from the insert only while someone may subscribe to ticks.
      wantTrades: () => bus.listening(Topic.QUOTES),
      clockFallback: this.follower.observed,
      epoch,
      committedBefore: this.committedIds,
      inDoubtBefore: this.inDoubt,
      // The embedded feed started moments ago: all it made is new, and taken whole, so that every
      // symbol's seq goes on without a gap even at a high --feed-speed.
      ...(feed
        ? { freshFeed: true, feedClock: () => feed.clock(), initialLookbackMs: Number.POSITIVE_INFINITY }
        : {}),
    });
    ingest.onCommit((e) => windows.onCommit(e));
    ingest.onCommit((e) => {
      let carried = 0;
      for (const part of e.trades) {
        carried += rowCount(part);
        for (const piece of chunksOf(part, TRADES_PER_EVENT)) bus.publish(Topic.QUOTES, piece);
      }
      // Rows stored without their columns (the batch was cut before anyone listened): say so, empty.
      if (e.inserted > carried && bus.listening(Topic.QUOTES)) bus.publish(Topic.QUOTES, noTrades());
    });
    this.ingesting = { ingest, windows, feed };
  }

  /** Stops ingest: gracefully at close; at once when the lease is lost (another replica may write now). */
  private async stopIngesting(graceful: boolean): Promise<void> {
    const run = this.ingesting;
    if (!run) return;
    const w = run.ingest.status().watermark;
    if (w) this.follower.observeWatermark(w);
    this.ingesting = null;
    await (graceful ? run.ingest.close() : run.ingest.abort());
    this.committedIds = run.ingest.lastCommittedIds();
    this.inDoubt = run.ingest.partsInDoubt();
    await run.windows.idle();
    await run.feed?.close();
  }

  private storedMarket(): Promise<StoredMarket> {
    return new CheckpointsRepo(this.db.dataSource).storedMarket();
  }

  private status(): ReplicaIngestStatus | null {
    const lease = this.lease;
    if (!lease) return null;
    return {
      ...(this.ingest?.status() ?? {
        state: "following",
        feedUrl: this.config.feedUrl ?? "embedded",
        connected: false,
        watermark: this.follower.watermark,
        lagMs: null,
        accepted: 0,
        rejected: 0,
        duplicates: 0,
        ratePerSecond: 0,
      }),
      replica: this.config.replica,
      leaseHolder: lease.holder,
    };
  }

  /** The part `close` waits for now (null when not closing). */
  get waitingFor(): string | null {
    return this.disposer.waitingFor;
  }

  /**
   * For a process that must exit now, its stop having overrun the grace period: an embedded Postgres
   * is given an immediate shutdown (its next start recovers, as after a crash).
   */
  abandon(): void {
    this.db.kill();
  }

  /** Stops everything it started, newest first. Safe to call twice. */
  async close(): Promise<void> {
    const { state } = this;
    if (state.phase === "starting") throw new Error("the platform is starting");
    if (state.phase === "stopped") return;
    this.state = { phase: "stopping", server: state.server };
    await this.disposer.dispose();
    this.state = { phase: "stopped", server: state.server };
  }
}

/** Starts the whole platform (see `Platform`). */
export function startPlatform(config: Config, opts: PlatformOptions = {}): Promise<Platform> {
  return Platform.start(config, opts);
}
