import { Client } from "pg";
import { Classification, Entitlement, Role } from "../../src/policy/principal";
import { grantEntitlements } from "../support/governance";
import { startTestPlatform, type TestPlatform } from "../support/server";

// A steward's latest decision wins, however many came before it: each reclassification is answered
// with the level asked and enforced from the next operation on, over HTTP (whose queries run as
// compiled plans that are cached across operations) and in a running subscription.
let t: TestPlatform;
let steward: string;
let user: string;
const CHANGES = 22;

beforeAll(async () => {
  t = await startTestPlatform(
    { INGEST: "on" },
    { feed: { seed: 11, symbols: 4, rate: 400, speed: 60, start: "2026-02-02T10:00:00Z" } },
  );
  steward = await t.token("stew", [Role.STEWARD]);
  user = await t.token("uma", [Role.USER]);
  await grantEntitlements(t, "uma", [Entitlement.REALTIME]);
});
afterAll(() => t.close());

async function classify(coordinate: string, level: Classification): Promise<string> {
  const { body } = await t.gql(
    `mutation($c: String!, $l: Classification!) { classifyField(coordinate: $c, level: $l) { level } }`,
    { token: steward, variables: { c: coordinate, l: level } },
  );
  expect(body.errors).toBeUndefined();
  return body.data.classifyField.level;
}

const levelAt = (k: number) => (k % 2 === 0 ? Classification.RESTRICTED : Classification.PUBLIC);

test(`${CHANGES} alternating reclassifications are each answered and enforced over HTTP at once`, async () => {
  // The same text every time: after the first run it is served from the compiled-plan cache.
  const query = `query Names { instruments { symbol sector } }`;
  for (let k = 0; k < CHANGES; k++) {
    const level = levelAt(k);
    expect(await classify("Instrument.sector", level)).toBe(level);
    const { body } = await t.gql(query, { token: user });
    const names = body.data.instruments.map((i: { sector: string | null }) => i.sector);
    expect(names.length).toBeGreaterThan(0);
    if (level === Classification.RESTRICTED) {
      expect(names.every((n: string | null) => n === null)).toBe(true);
      expect(body.errors?.[0].extensions?.code).toBe("FORBIDDEN");
      expect(body.errors?.[0].extensions?.coordinate).toBe("Instrument.sector");
    } else {
      expect(names.every((n: string | null) => typeof n === "string")).toBe(true);
      expect(body.errors).toBeUndefined();
    }
  }
  const { body } = await t.gql(`{ fieldPolicies { coordinate level } }`, { token: steward });
  const policy = body.data.fieldPolicies.find(
    (p: { coordinate: string }) => p.coordinate === "Instrument.sector",
  );
  expect(policy.level).toBe(levelAt(CHANGES - 1));
});

test(`${CHANGES} alternating reclassifications reach a running subscription with its next events`, async () => {
  type Event = { data?: { windowAggregates: { vwap: number | null } }; errors?: unknown[] };
  const events: Event[] = [];
  const waiters: (() => void)[] = [];
  const ws = t.ws({ connectionParams: { authorization: `Bearer ${user}` } });
  const stop = ws.subscribe(
    { query: `subscription { windowAggregates(size: ONE_MINUTE) { symbol vwap } }` },
    {
      next: (e) => {
        events.push(e as Event);
        waiters.splice(0).forEach((w) => w());
      },
      error: () => {},
      complete: () => {},
    },
  );
  const nextEvent = async (after: number): Promise<Event> => {
    const deadline = Date.now() + 20_000;
    while (events.length <= after) {
      if (Date.now() > deadline) throw new Error(`no subscription event after #${after}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 500);
      });
    }
    return events[after];
  };
  // Policy row ids cross 100 during this test, as they crossed 10 during the one above.
  const pg = new Client({ connectionString: t.databaseUrl });
  await pg.connect();
  await pg.query(`SELECT setval('field_policies_id_seq', 95)`);
  await pg.end();
  try {
    await nextEvent(0);
    for (let k = 0; k < CHANGES; k++) {
      const level = levelAt(k);
      expect(await classify("WindowAggregate.vwap", level)).toBe(level);
      // An event already being executed when the change committed may still carry the old decision;
      // the one after it may not.
      const seen = events.length;
      await nextEvent(seen);
      const e = await nextEvent(seen + 1);
      const closes = e.data!.windowAggregates.vwap;
      if (level === Classification.RESTRICTED) {
        expect(closes).toBeNull();
        expect(JSON.stringify(e.errors)).toContain("WindowAggregate.vwap");
      } else {
        expect(typeof closes).toBe("number");
        expect(e.errors).toBeUndefined();
      }
    }
  } finally {
    stop();
  }
});
