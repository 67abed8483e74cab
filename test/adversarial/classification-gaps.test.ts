import { Client } from "pg";
import { Entitlement, Role } from "../../src/policy/principal";
import { grantEntitlements } from "../support/governance";
import { seedMarketNow } from "../support/seed";
import { startTestPlatform, type TestPlatform } from "../support/server";

// dataQuality is a custodian's view (CONFIDENTIAL); quarantined input holds trades and quotes, so it is
// served delayed, on the market clock, to principals without REALTIME, like any market data.
let t: TestPlatform;
const MARKET_NOW = new Date("2026-03-02T15:00:00Z");

beforeAll(async () => {
  t = await startTestPlatform({ DELAY_SECONDS: "900" }, {}, async (url) => {
    await seedMarketNow(url, MARKET_NOW);
    const c = new Client({ connectionString: url });
    await c.connect();
    // One rejected trade received an hour ago on the market clock, one just now.
    await c.query(
      `INSERT INTO quarantine (received_at, raw, reason, detail, market_at) VALUES
         (now(), '{"T":"t","S":"OLD","p":-1}', 'INVALID_PRICE', 'old', $1),
         (now(), '{"T":"t","S":"NEW","p":-1}', 'INVALID_PRICE', 'new', $2)`,
      [new Date(MARKET_NOW.getTime() - 3_600_000), MARKET_NOW],
    );
    await c.end();
  });
  await grantEntitlements(t, "cleo", [Entitlement.REALTIME]);
});
afterAll(() => t.close());

test("a USER cannot read dataQuality; a custodian can", async () => {
  const user = await t.gql(`{ dataQuality { reason count } }`, { token: await t.token("uma", [Role.USER]) });
  expect(user.body.data).toBeNull();
  expect(user.body.errors?.[0].extensions?.code).toBe("FORBIDDEN");
  expect(user.body.errors?.[0].message).toMatch(/CONFIDENTIAL/);
  const custodian = await t.gql(`{ dataQuality { reason count } }`, {
    token: await t.token("carl", [Role.CUSTODIAN]),
  });
  expect(custodian.body.data.dataQuality).toEqual([{ reason: "INVALID_PRICE", count: 2 }]);
});

test("quarantined input is served delayed to a custodian without REALTIME, at once to one with it", async () => {
  const q = `{ quarantine(first: 10) { nodes { detail raw } } }`;
  const delayed = await t.gql(q, { token: await t.token("carl", [Role.CUSTODIAN]) });
  expect(delayed.body.data.quarantine.nodes.map((n: { detail: string }) => n.detail)).toEqual(["old"]);
  const live = await t.gql(q, { token: await t.token("cleo", [Role.CUSTODIAN]) });
  expect(live.body.data.quarantine.nodes.map((n: { detail: string }) => n.detail)).toEqual(["new", "old"]);
});
