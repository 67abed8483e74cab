import "reflect-metadata";
import { Presets, SingleBar } from "cli-progress";
import { Command, InvalidArgumentError } from "commander";
import { resolve } from "node:path";
import { ConfigError, jwtSecretOf, loadConfig, MissingKeyError, type Config } from "../config/config";
import { migrate } from "../db/data-source";
import { openDatabase } from "../db/database";
import { log, setLogLevel } from "../log";
import { startPlatform } from "../platform";
import { DEMO_PRINCIPALS } from "../policy/demo";
import { parseRoles, Role } from "../policy/principal";
import { mintToken, parseTtl } from "../policy/tokens";
import { buildTickgraphSchema, printTickgraphSchema } from "../schema/schema";
import { rebuildWindows } from "../windows/rebuild";
import { addFeedCommand } from "./feed.command";
import { addFeedFlags, mockFeedOptions, type FeedFlags } from "./feed.flags";
import { packageVersion } from "./version";

function config(overrides: Record<string, string | undefined> = {}): Config {
  const c = loadConfig(overrides);
  setLogLevel(c.logLevel);
  return c;
}

/** What a stop needs from what it stops. */
interface Stoppable {
  close(): Promise<void>;
  /** The part the stop waits for now, for the log line of an overrun. */
  readonly waitingFor: string | null;
  /** Last things to do before the process exits without having stopped in order. */
  abandon(): void;
}

/**
 * Runs until SIGINT/SIGTERM, then stops `target` within `graceSeconds`: past it, the process logs what
 * it still waited for and exits with status 1. A terminal's Ctrl-C reaches both npm and tickgraph, and
 * npm passes it on: a repeat within a second is the same request. A later one exits at once.
 */
function untilSignal(target: Stoppable, graceSeconds: number): void {
  let stoppingSince: number | null = null;
  const onSignal = (signal: string) => {
    if (stoppingSince !== null) {
      if (Date.now() - stoppingSince > 1000) {
        target.abandon();
        process.exit(130);
      }
      return;
    }
    stoppingSince = Date.now();
    log.info({ signal, graceSeconds }, "shutting down");
    setTimeout(() => {
      log.warn(
        { graceSeconds, waitingFor: target.waitingFor },
        `stop did not complete within ${graceSeconds} s (SHUTDOWN_GRACE_SECONDS); exiting`,
      );
      target.abandon();
      process.exit(1);
    }, graceSeconds * 1000);
    target.close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

const isoDate = (v: string): Date => {
  const d = new Date(v);
  if (Number.isNaN(d.getTime()))
    throw new InvalidArgumentError(`"${v}" is not an ISO-8601 instant (e.g. 2026-01-05T14:30:00Z).`);
  return d;
};

const port = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError("a port is a whole number from 0 to 65535.");
  return v;
};

/** A word as a POSIX shell reads it back: quoted only when it must be. */
const shellWord = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * `npx tickgraph token` as it must be run to mint tokens this server accepts: with its data dir when
 * that is not the default one (the key is kept there). Null when tokens come from an identity provider.
 */
export function tokenCommand(c: Config, cwd = process.cwd()): string | null {
  if (c.jwksUrl) return null;
  const dataDir =
    !c.jwtSecret && c.dataDir !== resolve(cwd, ".tickgraph") ? ` --data-dir ${shellWord(c.dataDir)}` : "";
  return `npx tickgraph token${dataDir}`;
}

export function buildCli(): Command {
  const program = new Command("tickgraph")
    .description(
      "GraphQL data platform for market data: ingest, windows, governed queries, live subscriptions.",
    )
    .version(packageVersion(), "-v, --version", "print tickgraph's version")
    .showHelpAfterError();

  const serve = program
    .command("serve")
    .description(
      "Run the platform: Postgres (embedded unless DATABASE_URL), migrations, feed, ingest, GraphQL.",
    )
    .option("-p, --port <port>", "HTTP and WebSocket port (env PORT)", port)
    .option("--data-dir <dir>", "embedded Postgres and generated secrets (env DATA_DIR, default .tickgraph)")
    .action(async (opts: { port?: string; dataDir?: string } & FeedFlags) => {
      const c = config({ PORT: opts.port, DATA_DIR: opts.dataDir });
      const platform = await startPlatform(c, { feed: mockFeedOptions(opts) });
      untilSignal(platform, c.shutdownGraceSeconds);
      const { url } = platform.server;
      const home = url.replace(/\/graphql$/, "");
      // On the mock market, ready links to the pages, signed in as a demo principal (the token rides in
      // the URL fragment, which never reaches a server log).
      const demoLink = async (sub: string, role: Role, path = "/") =>
        `${home}${path}#token=${await mintToken(jwtSecretOf(c), sub, [role], 12 * 3600)}`;
      const links =
        platform.feed && !c.jwksUrl
          ? [
              ``,
              `Dashboard (as alice):   ${await demoLink("alice", Role.USER)}`,
              `Access log (as sam):    ${await demoLink("sam", Role.STEWARD, "/access-log")}`,
              `Explorer (as alice):    ${await demoLink("alice", Role.USER, "/explorer")}`,
            ]
          : [``, `Dashboard: ${home}/   GraphQL explorer: ${home}/explorer   Access log: ${home}/access-log`];
      const db = platform.db.embedded ? `embedded Postgres under ${c.dataDir}` : "DATABASE_URL";
      const lease = platform.lease;
      const holder = lease?.holder;
      const token = tokenCommand(c);
      process.stdout.write(
        [
          ``,
          `tickgraph is serving GraphQL at ${url} (HTTP and WebSocket), on ${db}.`,
          ``,
          token
            ? `Get a token:   TOKEN=$(${token} --sub alice --roles USER)${c.jwtSecret ? "   (with this server's JWT_SECRET set)" : ""}`
            : `Get a token:   from your identity provider (JWKS_URL is set)`,
          `Then query:    curl -s ${url} -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\`,
          `                 -d '{"query":"{ quotes(first: 5) { nodes { symbol eventTime price size } } }"}'`,
          ...(lease
            ? [
                ``,
                lease.held
                  ? `Ingest:        this replica (${c.replica}) holds the ingest lease and ingests.`
                  : `Ingest:        ${holder ? `replica ${holder}` : "another replica"} holds the ingest lease; this one (${c.replica}) takes over if it stops.`,
              ]
            : []),
          ...(c.ingest && !c.feedUrl
            ? [
                ``,
                `Demo principals on the mock market (use their id and roles with \`${token ?? "npx tickgraph token"}\`):`,
                ...DEMO_PRINCIPALS.map(
                  (p) => `  --sub ${p.id.padEnd(7)} --roles ${p.roles.join(",").padEnd(10)} ${p.what}`,
                ),
              ]
            : []),
          ...links,
          `Health:        ${url.replace("/graphql", "/readyz")}   Metrics: ${url.replace("/graphql", "/metrics")}`,
          ``,
        ].join("\n"),
      );
    });
  addFeedFlags(serve);

  addFeedCommand(program);

  program
    .command("migrate")
    .description("Apply pending database migrations and exit.")
    .action(async () => {
      const db = await openDatabase(config());
      try {
        const applied = await migrate(db.dataSource);
        process.stdout.write(
          applied.length ? `applied: ${applied.join(", ")}\n` : "database is up to date\n",
        );
      } finally {
        await db.close();
      }
    });

  program
    .command("token")
    .description(
      "Mint a JWT signed with JWT_SECRET, or with the key `serve` keeps in its data dir (pass the same --data-dir).",
    )
    .requiredOption("--sub <id>", "the principal's id")
    .option("--roles <roles>", "comma-separated: USER, CUSTODIAN, STEWARD, OWNER", "USER")
    .option("--ttl <duration>", "how long it is valid: 90s, 15m, 1h, 7d", "1h")
    .option("--data-dir <dir>", "the server's data dir, where its key is (env DATA_DIR, default .tickgraph)")
    .option(
      "--create-key",
      "create a key in the data dir when there is none (the server uses it from its next start)",
    )
    .action(
      async (opts: { sub: string; roles: string; ttl: string; dataDir?: string; createKey?: boolean }) => {
        const c = config({ DATA_DIR: opts.dataDir });
        if (c.jwksUrl)
          throw new ConfigError(
            "JWKS_URL is set: tokens come from your identity provider, not from tickgraph.",
          );
        const roles = parseRoles(opts.roles);
        const ttl = parseTtl(opts.ttl);
        let secret: string;
        try {
          secret = jwtSecretOf(c, opts.createKey === true);
        } catch (err) {
          if (!(err instanceof MissingKeyError)) throw err;
          // A key made here would sign tokens that no running server accepts.
          throw new ConfigError(
            `No token key in ${c.dataDir}: \`tickgraph serve\` keeps its key in its data dir. Pass the server's --data-dir (or DATA_DIR, or its JWT_SECRET), or --create-key to create a key there.`,
          );
        }
        process.stdout.write((await mintToken(secret, opts.sub, roles, ttl)) + "\n");
      },
    );

  program
    .command("rebuild-windows")
    .description(
      "Recompute panes and windows from stored quotes in [--from, --to) (after a backfill or a fix).",
    )
    .requiredOption("--from <iso>", "start of the event-time range, e.g. 2026-01-05T14:30:00Z", isoDate)
    .requiredOption("--to <iso>", "end of the event-time range (exclusive)", isoDate)
    .action(async (opts: { from: Date; to: Date }) => {
      if (opts.from >= opts.to) throw new InvalidArgumentError("--from must be before --to.");
      const db = await openDatabase(config());
      const bar = new SingleBar(
        {
          format: "rebuilding windows [{bar}] {percentage}% | {value}/{total} chunks | {eta_formatted} left",
        },
        Presets.shades_classic,
      );
      try {
        await migrate(db.dataSource);
        const started = Date.now();
        const r = await rebuildWindows(db.dataSource, opts.from, opts.to, {
          onProgress: (done, total) => (done === 1 ? bar.start(total, done) : bar.update(done)),
        });
        bar.stop();
        process.stdout.write(
          `rebuilt ${r.panes} panes; ${r.windowsChanged} windows changed, ${r.windowsRemoved} removed in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
        );
      } finally {
        bar.stop();
        await db.close();
      }
    });

  program
    .command("print-schema")
    .description("Print the GraphQL schema with its applied directives (what schema.graphql holds).")
    .action(() => {
      process.stdout.write(printTickgraphSchema(buildTickgraphSchema()));
    });

  return program;
}

/** Entry point of the `tickgraph` binary. */
export function run(argv: string[] = process.argv): void {
  buildCli()
    .parseAsync(argv)
    .catch((err: unknown) => {
      if (err instanceof ConfigError) process.stderr.write(`configuration error: ${err.message}\n`);
      else process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      log.debug({ err }, "command failed");
      process.exit(1);
    });
}
