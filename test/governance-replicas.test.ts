import { createEventBus } from "../src/events/bus";
import { Role } from "../src/policy/principal";
import type { RunningServer } from "../src/server/server";
import { seedQuotes } from "./support/seed";
import { startReplica, startTestPlatform, type TestPlatform } from "./support/server";

// Two replicas on one database: policy changes made on one hold on the other at once, and both
// extend one access-log chain.
let t: TestPlatform;
let b: RunningServer;
let owner: string;
let steward: string;

beforeAll(async () => {
  t = await startTestPlatform({}, {}, (url) => seedQuotes(url, { symbols: ["AAPL"], perSymbol: 5 }));
  const bus = createEventBus();
  b = await startReplica(t, bus);
  owner = await t.token("orla", [Role.OWNER]);
  steward = await t.token("stef", [Role.STEWARD]);
});
afterAll(async () => {
  await b.close();
  await t.close();
});

async function onB(query: string, token: string) {
  const res = await fetch(b.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (await res.json()) as { data?: any; errors?: { extensions?: Record<string, unknown> }[] };
}

/** Polls `probe` for at most `ms`: well under the entitlement cache's lifetime, so only NOTIFY can make it. */
async function within<T>(ms: number, probe: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 15));
  }
}

test("a grant and a revocation on replica A apply on replica B before its cache would expire", async () => {
  const pat = await t.token("pat");
  const bid = async () =>
    (await onB(`{ latestQuotes(symbols: ["AAPL"]) { bid } }`, pat)).data.latestQuotes[0].bid;
  expect(await bid()).toBeNull(); // B now holds pat's (empty) entitlements

  await t.gql(`mutation { grantEntitlement(principal: "pat", entitlement: DEPTH) { id } }`, { token: owner });
  expect(await within(300, bid, (v) => v !== null)).toEqual(expect.any(Number));

  await t.gql(`mutation { revokeEntitlement(principal: "pat", entitlement: DEPTH) { id } }`, {
    token: owner,
  });
  expect(await within(300, bid, (v) => v === null)).toBeNull();
});

test("a reclassification on replica A applies on replica B", async () => {
  const user = await t.token("ulla");
  const probe = () => onB(`{ instrument(symbol: "AAPL") { symbol sector } }`, user);
  expect((await probe()).data.instrument.sector).toBe("Technology");
  await t.gql(`mutation { classifyField(coordinate: "Instrument.sector", level: RESTRICTED) { level } }`, {
    token: steward,
  });
  const denied = await within(300, probe, (r) => r.data.instrument.sector === null);
  expect(denied.data.instrument.symbol).toBe("AAPL");
  expect(denied.errors?.[0].extensions).toMatchObject({ code: "FORBIDDEN", coordinate: "Instrument.sector" });
});

test("concurrent operations on both replicas extend one unbroken chain", async () => {
  const user = await t.token("vic");
  const ops = Array.from({ length: 40 }, (_, i) =>
    i % 2 ? onB(`{ me { id } }`, user) : t.gql(`{ me { id } }`, { token: user }),
  );
  await Promise.all(ops);
  const { body } = await t.gql(
    `{ verifyAccessLog { ok firstBrokenSeq } accessLog(filter: { principal: "vic" }, first: 100) { nodes { seq } } }`,
    { token: steward },
  );
  expect(body.data.verifyAccessLog).toEqual({ ok: true, firstBrokenSeq: null });
  expect(body.data.accessLog.nodes).toHaveLength(40);
});
