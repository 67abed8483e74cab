import { createClient, type Client as WsClient } from "graphql-ws";
import WebSocket from "ws";
import { Role } from "../../src/policy/principal";
import type { RunningServer } from "../../src/server/server";
import { until } from "../support/wait";
import { busEnv, openBus, SHARED_BUSES, type ClosableBus } from "../support/buses";
import { grantEntitlements } from "../support/governance";
import { startReplica, startTestPlatform, type TestPlatform } from "../support/server";
import { record, type Recording } from "../support/subscriptions";
import { collect } from "./live.helpers";

type Entry = { principal: string | null; operationName: string | null };

// With a shared bus (EVENT_BUS=postgres or nats), a replica that runs no ingest streams what the
// ingesting one commits: ticks and windows travel on the bus, and so do access-log entries, whichever
// replica wrote them.
describe.each(SHARED_BUSES)("over %s", (kind) => {
  let t: TestPlatform;
  let bus: ClosableBus;
  let b: RunningServer;
  let client: WsClient;

  const env = busEnv(kind);
  beforeAll(async () => {
    t = await startTestPlatform(
      { INGEST: "on", ...env },
      { feed: { seed: 3, symbols: 6, rate: 1000, speed: 60, start: "2026-01-05T14:29:00Z" } },
    );
    await grantEntitlements(t, "rita");
    bus = await openBus(env, t.databaseUrl);
    b = await startReplica(t, bus);
    client = createClient({
      url: b.wsUrl,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${await t.token("rita")}` },
    });
  });
  afterAll(async () => {
    await client.dispose();
    await b.close();
    await bus.close();
    await t.close();
  });

  test("another replica streams ticks and rankings from the shared bus", async () => {
    const { body } = await t.gql(`{ instruments { symbol } }`);
    const symbol: string = body.data.instruments[0].symbol;
    const [ticks, rankings] = await Promise.all([
      collect<{ quoteTicks: { id: string; symbol: string } }>(
        client,
        `subscription($s: [String!]!) { quoteTicks(symbols: $s) { id symbol } }`,
        (e) => e.length >= 20,
        { variables: { s: [symbol] } },
      ),
      collect<{ topSymbols: { windowEnd: string } }>(
        client,
        `subscription { topSymbols(size: ONE_MINUTE) { windowEnd } }`,
        (e) => e.length >= 3,
      ),
    ]);
    expect(ticks.every((e) => e.data.quoteTicks.symbol === symbol)).toBe(true);
    expect(new Set(ticks.map((e) => e.data.quoteTicks.id)).size).toBe(ticks.length);
    const ends = rankings.map((e) => Date.parse(e.data.topSymbols.windowEnd));
    expect(ends.slice(1).every((x, i) => x > ends[i])).toBe(true);
  });

  test("accessEvents on either replica carries the entries of operations on both, each once", async () => {
    const steward = await t.token("stu", [Role.STEWARD]);
    const watch = (url: string) => {
      const c = createClient({
        url,
        webSocketImpl: WebSocket,
        retryAttempts: 0,
        connectionParams: { authorization: `Bearer ${steward}` },
      });
      return {
        c,
        rec: record<{ accessEvents: Entry }>(c, `subscription { accessEvents { principal operationName } }`),
      };
    };
    const onA = watch(t.wsUrl);
    const onB = watch(b.wsUrl);
    try {
      const vic = await t.token("vic");
      const query = (url: string, name: string) =>
        fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${vic}` },
          body: JSON.stringify({ query: `query ${name} { me { id } }` }),
        });
      const names = (rec: Recording<{ accessEvents: Entry }>) =>
        rec.events
          .map((e) => e.data.accessEvents)
          .filter((e) => e.principal === "vic")
          .map((e) => e.operationName);
      // Both subscriptions live: a probe on each replica reached both.
      let k = 0;
      await until("both subscriptions live", async () => {
        k++;
        await Promise.all([query(t.url, `ProbeA${k}`), query(b.url, `ProbeB${k}`)]);
        return [onA, onB].every(
          ({ rec }) =>
            names(rec).some((n) => n?.startsWith("ProbeA")) &&
            names(rec).some((n) => n?.startsWith("ProbeB")),
        )
          ? true
          : undefined;
      });
      await query(t.url, "OnA");
      await query(b.url, "OnB");
      await query(t.url, "Fence");
      await until("the fence on both", () =>
        [onA, onB].every(({ rec }) => names(rec).includes("Fence")) ? true : undefined,
      );
      for (const { rec } of [onA, onB]) {
        const seen = names(rec).filter((n) => !n?.startsWith("Probe"));
        expect(seen.sort()).toEqual(["Fence", "OnA", "OnB"]);
        expect(rec.errors).toEqual([]);
      }
    } finally {
      await Promise.all([onA.c.dispose(), onB.c.dispose()]);
    }
  });
});
