import { Role } from "../../src/policy/principal";
import { startTestPlatform, type TestPlatform } from "../support/server";

// `npm start` on the mock market: the token the start-up message suggests must see live data at once.
let t: TestPlatform;
beforeAll(async () => {
  t = await startTestPlatform({ INGEST: "on" }, { feed: { seed: 3, symbols: 10, rate: 500 } });
});
afterAll(() => t.close());

test("demo principals hold their entitlements; alice is served live quotes, bob delayed ones", async () => {
  const alice = await t.token("alice", [Role.USER]);
  const bob = await t.token("bob", [Role.USER]);
  expect((await t.gql(`{ me { entitlements } }`, { token: alice })).body.data.me.entitlements.sort()).toEqual(
    ["DEPTH", "REALTIME"],
  );
  expect((await t.gql(`{ me { entitlements } }`, { token: bob })).body.data.me.entitlements).toEqual([]);
  const deadline = Date.now() + 20_000;
  let nodes: { delayed: boolean; bid: number | null }[] = [];
  while (!nodes.length && Date.now() < deadline) {
    nodes = (await t.gql(`{ quotes(first: 5) { nodes { delayed bid } } }`, { token: alice })).body.data.quotes
      .nodes;
    if (!nodes.length) await new Promise((r) => setTimeout(r, 200));
  }
  expect(nodes.length).toBeGreaterThan(0);
  expect(nodes.every((n) => n.delayed === false && n.bid !== null)).toBe(true);
  // Bob sees nothing yet: everything stored is younger than DELAY_SECONDS on the market clock.
  expect(
    (await t.gql(`{ quotes(first: 5) { nodes { delayed } } }`, { token: bob })).body.data.quotes.nodes,
  ).toEqual([]);
});
