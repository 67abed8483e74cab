import { ConfigError, loadConfig } from "../src/config/config";

test("defaults", () => {
  const c = loadConfig({}, {});
  expect(c).toMatchObject({
    port: 4000,
    delaySeconds: 900,
    logLevel: "info",
    databaseUrl: undefined,
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

test("explicit overrides beat the environment", () => {
  expect(loadConfig({ PORT: "5000" }, { PORT: "6000" }).port).toBe(5000);
  expect(loadConfig({}, { PORT: "6000" }).port).toBe(6000);
});

test.each([
  [{ PORT: "abc" }, /PORT=abc is not valid: use a whole number from 0 to 65535/],
  [{ PORT: "70000" }, /PORT=70000/],
  [{ DELAY_SECONDS: "-5" }, /DELAY_SECONDS=-5/],
  [{ LOG_LEVEL: "loud" }, /LOG_LEVEL=loud is not valid: use one of/],
  [{ DATABASE_URL: "localhost:5432" }, /DATABASE_URL must use postgres: or postgresql:/],
  [{ DATABASE_URL: "::" }, /DATABASE_URL is not a URL/],
  [{ JWT_SECRET: "short" }, /JWT_SECRET is too short/],
  [{ JWT_SECRET: "x".repeat(40), JWKS_URL: "https://idp/jwks" }, /not both/],
  [{ FEED_URL: "ws://feed" }, /set FEED_KEY and FEED_SECRET/],
  [{ EVENT_BUS: "kafka" }, /EVENT_BUS=kafka is not valid: use one of memory, postgres/],
  [{ REPLICA_NAME: "has space" }, /REPLICA_NAME=has space is not valid/],
  [{ LEASE_RETRY_MS: "10" }, /LEASE_RETRY_MS=10 is not valid: use a whole number from 100 to 60000/],
  [{ FEED_URL: "http://feed", FEED_KEY: "k", FEED_SECRET: "s" }, /FEED_URL must use ws: or wss:/],
])("%o fails fast: %s", (env, message) => {
  expect(() => loadConfig({}, env)).toThrow(ConfigError);
  expect(() => loadConfig({}, env)).toThrow(message);
});
