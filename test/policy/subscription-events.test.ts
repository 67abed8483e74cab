import { Repeater } from "@graphql-yoga/subscription";
import { buildSchema, parse, subscribe, type ExecutionResult } from "graphql";
import { enforcePolicy } from "../../src/schema/enforce";
import { FieldRegistry } from "../../src/policy/field-registry";
import { Classification, Entitlement, Role } from "../../src/policy/principal";
import { delayCutoff, PolicySession, RECHECK_MS, type SessionSource } from "../../src/policy/session";

// Every event of a subscription is checked against the policy as it stands when the event is sent.
const SDL = `
  directive @classified(level: Classification!) on OBJECT | FIELD_DEFINITION
  directive @entitled(to: Entitlement!) on FIELD_DEFINITION
  enum Classification { PUBLIC INTERNAL CONFIDENTIAL RESTRICTED }
  enum Entitlement { REALTIME DEPTH }
  type Tick { symbol: String! bid: Float @entitled(to: DEPTH) cutoff: String }
  type Query { ok: Boolean }
  type Subscription { ticks: Tick }
`;

function setup(initial: Entitlement[]) {
  const raw = buildSchema(SDL);
  let push!: (v: unknown) => Promise<unknown>;
  const stream = new Repeater<unknown>(async (p, stop) => {
    push = p;
    await stop;
  });
  const held = { entitlements: initial, lookups: 0, subscribed: 0 };
  raw.getSubscriptionType()!.getFields().ticks.subscribe = () => {
    held.subscribed++;
    return stream;
  };
  raw.getSubscriptionType()!.getFields().ticks.resolve = (payload) => payload;
  (
    raw.getType("Tick") as unknown as { getFields(): Record<string, { resolve?: unknown }> }
  ).getFields().cutoff.resolve = (_: unknown, __: unknown, ctx: { policy: PolicySession }) =>
    delayCutoff(ctx)?.toISOString() ?? null;
  const fields = new FieldRegistry(raw);
  const schema = enforcePolicy(raw, fields);
  const clock = { now: () => new Date("2026-03-02T15:00:00Z") };
  const source: SessionSource = {
    fields,
    clock,
    delaySeconds: 900,
    async entitlementsOf() {
      held.lookups++;
      return held.entitlements;
    },
  };
  return { schema, fields, held, source, push: (v: unknown) => push(v) };
}

async function start(env: ReturnType<typeof setup>) {
  const policy = await PolicySession.open(env.source, { id: "u", roles: [Role.USER] });
  const it = (await subscribe({
    schema: env.schema,
    document: parse(`subscription { ticks { symbol bid cutoff } }`),
    contextValue: { policy },
  })) as AsyncIterableIterator<ExecutionResult>;
  return { policy, it };
}

test("a revoked entitlement masks the next event once the re-check interval has passed", async () => {
  const env = setup([Entitlement.DEPTH, Entitlement.REALTIME]);
  const { policy, it } = await start(env);
  const next = it.next();
  void env.push({ symbol: "A", bid: 1 });
  expect((await next).value.data).toEqual({ ticks: { symbol: "A", bid: 1, cutoff: null } });

  env.held.entitlements = [];
  await new Promise((r) => setTimeout(r, RECHECK_MS + 50));
  const after = it.next();
  void env.push({ symbol: "B", bid: 2 });
  const r = (await after).value as ExecutionResult;
  expect(r.data).toEqual({ ticks: { symbol: "B", bid: null, cutoff: "2026-03-02T14:45:00.000Z" } });
  expect([...policy.eventMasked]).toEqual(["Tick.bid"]);
  expect(policy.delayed).toBe(true);
  await it.return?.();
});

test("entitlements are not re-read for every event within the interval", async () => {
  const env = setup([Entitlement.DEPTH]);
  const { it } = await start(env);
  for (let i = 0; i < 5; i++) {
    const n = it.next();
    void env.push({ symbol: "A", bid: i });
    expect(((await n).value as ExecutionResult).data).toEqual({
      ticks: { symbol: "A", bid: i, cutoff: "2026-03-02T14:45:00.000Z" },
    });
  }
  expect(env.held.lookups).toBe(1);
  await it.return?.();
});

test("a field reclassified above the caller ends the stream with a FORBIDDEN event", async () => {
  const env = setup([]);
  const { it } = await start(env);
  const first = it.next();
  void env.push({ symbol: "A", bid: 1 });
  expect(((await first).value as ExecutionResult).data?.ticks).toMatchObject({ symbol: "A", bid: null });

  env.fields.setOverrides(
    [
      {
        coordinate: "Subscription.ticks",
        level: Classification.RESTRICTED,
        updatedBy: "s",
        updatedAt: new Date(),
      },
    ],
    "1",
  );
  const denied = it.next();
  void env.push({ symbol: "B", bid: 2 });
  const r = (await denied).value as ExecutionResult;
  expect(r.data).toEqual({ ticks: null });
  expect(r.errors?.[0].extensions).toMatchObject({ code: "FORBIDDEN", coordinate: "Subscription.ticks" });
  expect(await it.next()).toEqual({ done: true, value: undefined });
});

test("a subscription refused at subscribe time never starts its source", async () => {
  const env = setup([]);
  env.fields.setOverrides(
    [
      {
        coordinate: "Subscription.ticks",
        level: Classification.CONFIDENTIAL,
        updatedBy: "s",
        updatedAt: new Date(),
      },
    ],
    "1",
  );
  const policy = await PolicySession.open(env.source, { id: "u", roles: [Role.USER] });
  const r = (await subscribe({
    schema: env.schema,
    document: parse(`subscription { t: ticks { symbol } }`),
    contextValue: { policy },
  })) as ExecutionResult;
  expect(r.errors?.[0].extensions).toMatchObject({ code: "FORBIDDEN", coordinate: "Subscription.ticks" });
  expect([...policy.denied]).toEqual(["Subscription.ticks"]);
  expect(env.held.subscribed).toBe(0);
});
