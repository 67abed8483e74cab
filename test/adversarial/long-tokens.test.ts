import { Role } from "../../src/policy/principal";
import { startTestPlatform, wsQuery, type TestPlatform } from "../support/server";

// A token valid for longer than setTimeout can wait (2^31 − 1 ms, about 24.8 days) holds its
// WebSocket like any other; today's expiry timer would otherwise fire at once and close it.
let t: TestPlatform;

beforeAll(async () => {
  t = await startTestPlatform();
});
afterAll(() => t.close());

test.each([25, 90, 365])("a token valid for %i days keeps its WebSocket open", async (days) => {
  const token = await t.token("long", [Role.USER], days * 86_400);
  const closes: number[] = [];
  const ws = t.ws({
    connectionParams: { authorization: `Bearer ${token}` },
    on: { closed: (e) => closes.push((e as { code: number }).code) },
  });
  expect(await wsQuery(ws, `{ me { id } }`)).toEqual({ data: { me: { id: "long" } } });
  // An expiry timer that overflowed fires on the next turn of the event loop: give it many.
  for (let k = 0; k < 20; k++) await new Promise((r) => setTimeout(r, 25));
  expect(await wsQuery(ws, `{ me { id } }`)).toEqual({ data: { me: { id: "long" } } });
  expect(closes).toEqual([]);
  await ws.dispose();
});
