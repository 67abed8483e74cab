import { ConfigError, loadConfig } from "../../src/config/config";

test("defaults", () => {
  const c = loadConfig({}, {});
  expect(c).toMatchObject({
    port: 4000,
    delaySeconds: 900,
    shutdownGraceSeconds: 10,
    logLevel: "info",
    databaseUrl: undefined,
    introspection: true,
    corsOrigins: [],
  });
  expect(c.limits).toEqual({
    maxDepth: 12,
    maxCost: 50000,
    maxAliases: 30,
    maxPageSize: 1000,
    maxRequestBytes: 1048576,
    maxResponseBytes: 16777216,
    maxSubscriptionCost: 50000,
    statementTimeoutMs: 5000,
    maxConnectionsPerPrincipal: 32,
    maxSubscriptionsPerPrincipal: 200,
    subscriptionQueue: 1000,
    maxBatchSize: 10,
    maxBatchCost: 200000,
    maxExports: 4,
  });
  expect(c.dataDir).toMatch(/\.tickgraph$/);
});

test("replica name and lease retry", () => {
  expect(loadConfig({}, {})).toMatchObject({ replica: expect.stringMatching(/:\d+$/), leaseRetryMs: 1000 });
  expect(loadConfig({}, { REPLICA_NAME: "api-2", LEASE_RETRY_MS: "250" })).toMatchObject({
    replica: "api-2",
    leaseRetryMs: 250,
  });
});

test("the feed: REST base apart from the stream, and the stream's format", () => {
  const feed = { FEED_KEY: "k", FEED_SECRET: "s" };
  // Embedded mock: it serves its own REST API; msgpack unless asked otherwise.
  expect(loadConfig({}, {})).toMatchObject({
    feedUrl: undefined,
    feedRestUrl: undefined,
    feedFormat: "msgpack",
  });
  // A real provider serves REST from another host than the stream.
  expect(
    loadConfig(
      {},
      {
        ...feed,
        FEED_URL: "wss://stream.data.alpaca.markets/v2/sip",
        FEED_REST_URL: "https://data.alpaca.markets",
        FEED_FORMAT: "json",
      },
    ),
  ).toMatchObject({
    feedUrl: "wss://stream.data.alpaca.markets/v2/sip",
    feedRestUrl: "https://data.alpaca.markets",
    feedFormat: "json",
  });
  // Unset, it is the stream's host and port, where `tickgraph feed` serves both.
  expect(loadConfig({}, { ...feed, FEED_URL: "ws://127.0.0.1:8765/v2/iex" }).feedRestUrl).toBe(
    "http://127.0.0.1:8765",
  );
  expect(loadConfig({}, { ...feed, FEED_URL: "wss://feed.example:9443/v2/iex" }).feedRestUrl).toBe(
    "https://feed.example:9443",
  );
});

test("introspection is a setting of its own, whatever NODE_ENV says", () => {
  expect(loadConfig({}, { NODE_ENV: "production" }).introspection).toBe(true);
  expect(loadConfig({}, { INTROSPECTION: "off" }).introspection).toBe(false);
});

test("CORS origins", () => {
  expect(
    loadConfig({}, { CORS_ORIGINS: "https://bi.example.com, http://localhost:8888" }).corsOrigins,
  ).toEqual(["https://bi.example.com", "http://localhost:8888"]);
  expect(loadConfig({}, { CORS_ORIGINS: "*" }).corsOrigins).toEqual(["*"]);
});

test("EVENT_BUS=nats takes NATS_URL (one server or several) and NATS_SUBJECT, with defaults", () => {
  expect(loadConfig({}, { EVENT_BUS: "nats" })).toMatchObject({
    eventBus: "nats",
    natsUrl: "nats://127.0.0.1:4222",
    natsSubject: "tickgraph",
  });
  expect(
    loadConfig({}, { NATS_URL: "nats://n1:4222,tls://n2:4222", NATS_SUBJECT: "prod.tickgraph" }),
  ).toMatchObject({ natsUrl: "nats://n1:4222,tls://n2:4222", natsSubject: "prod.tickgraph" });
});

test("explicit overrides beat the environment", () => {
  expect(loadConfig({ PORT: "5000" }, { PORT: "6000" }).port).toBe(5000);
  expect(loadConfig({}, { PORT: "6000" }).port).toBe(6000);
});

test.each([
  [{ PORT: "abc" }, /PORT=abc is not valid: use a whole number from 0 to 65535/],
  [{ PORT: "70000" }, /PORT=70000/],
  [{ DELAY_SECONDS: "-5" }, /DELAY_SECONDS=-5/],
  [
    { SHUTDOWN_GRACE_SECONDS: "0" },
    /SHUTDOWN_GRACE_SECONDS=0 is not valid: use a whole number from 1 to 3600/,
  ],
  [{ LOG_LEVEL: "loud" }, /LOG_LEVEL=loud is not valid: use one of/],
  [{ DATABASE_URL: "localhost:5432" }, /DATABASE_URL must use postgres: or postgresql:/],
  [{ DATABASE_URL: "::" }, /DATABASE_URL is not a URL/],
  [{ JWT_SECRET: "short" }, /JWT_SECRET is too short/],
  [{ JWT_SECRET: "x".repeat(40), JWKS_URL: "https://idp/jwks" }, /not both/],
  [{ FEED_URL: "ws://feed" }, /set FEED_KEY and FEED_SECRET/],
  [{ EVENT_BUS: "kafka" }, /EVENT_BUS=kafka is not valid: use one of memory, postgres, nats/],
  [{ NATS_URL: "http://127.0.0.1:4222" }, /NATS_URL: "http:\/\/127.0.0.1:4222" is not a NATS server URL/],
  [{ NATS_URL: "nats://a:4222, 127.0.0.1" }, /NATS_URL: "127.0.0.1" is not a NATS server URL/],
  [{ NATS_SUBJECT: "ticks.>" }, /NATS_SUBJECT=ticks.> is not valid/],
  [{ REPLICA_NAME: "has space" }, /REPLICA_NAME=has space is not valid/],
  [{ LEASE_RETRY_MS: "10" }, /LEASE_RETRY_MS=10 is not valid: use a whole number from 100 to 60000/],
  [{ FEED_URL: "http://feed", FEED_KEY: "k", FEED_SECRET: "s" }, /FEED_URL must use ws: or wss:/],
  [
    { FEED_URL: "ws://feed", FEED_KEY: "k", FEED_SECRET: "s", FEED_REST_URL: "ws://feed" },
    /FEED_REST_URL must use https: or http:/,
  ],
  [{ FEED_REST_URL: "https://data.example" }, /FEED_REST_URL is set without FEED_URL/],
  [{ FEED_FORMAT: "xml" }, /FEED_FORMAT=xml is not valid: use one of msgpack, json/],
  [{ INTROSPECTION: "maybe" }, /INTROSPECTION=maybe is not valid: use on or off/],
  [{ CORS_ORIGINS: "https://bi.example.com/" }, /"https:\/\/bi.example.com\/" is not an origin/],
  [{ CORS_ORIGINS: "bi.example.com" }, /CORS_ORIGINS: "bi.example.com" is not an origin/],
  [{ CORS_ORIGINS: "*,https://a.example" }, /list no others beside it/],
  [{ MAX_BATCH_SIZE: "0" }, /MAX_BATCH_SIZE=0 is not valid: use a whole number from 1 to 1000/],
])("%o fails fast: %s", (env, message) => {
  expect(() => loadConfig({}, env)).toThrow(ConfigError);
  expect(() => loadConfig({}, env)).toThrow(message);
});
