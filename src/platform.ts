import { jwtSecretOf, type Config } from "./config/config";
import { migrate } from "./db/data-source";
import { openDatabase, type Database } from "./db/database";
import { log, setLogLevel } from "./log";
import { createTokenVerifier } from "./policy/tokens";
import { buildTickgraphSchema } from "./schema/schema";
import { startServer, type RunningServer } from "./server/server";

export interface Platform {
  server: RunningServer;
  db: Database;
  /** Stops everything it started, newest first. Safe to call twice. */
  close(): Promise<void>;
}

/** Starts the whole platform: database (embedded or DATABASE_URL), migrations, GraphQL server. */
export async function startPlatform(config: Config): Promise<Platform> {
  setLogLevel(config.logLevel);
  const db = await openDatabase(config);
  let server: RunningServer | undefined;
  try {
    const applied = await migrate(db.dataSource);
    if (applied.length) log.info({ applied }, "migrations applied");
    const verifier = createTokenVerifier(
      config.jwksUrl ? { jwksUrl: config.jwksUrl } : { secret: jwtSecretOf(config) },
    );
    server = await startServer({
      config,
      schema: buildTickgraphSchema(),
      dataSource: db.dataSource,
      verifier,
    });
  } catch (err) {
    await db.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    server,
    db,
    close() {
      closing ??= (async () => {
        await server.close();
        await db.close();
      })();
      return closing;
    },
  };
}
