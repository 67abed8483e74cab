import { Client } from "pg";
import { Role } from "../src/policy/principal";
import { seedQuotes } from "./support/seed";
import { startTestPlatform, wsQuery, type TestPlatform } from "./support/server";

// Every operation a client sends, whatever becomes of it, leaves exactly one access-log entry.
let t: TestPlatform;
beforeAll(async () => {
  t = await startTestPlatform({}, {}, (url) => seedQuotes(url, { symbols: ["AAPL"], perSymbol: 3 }));
});
afterAll(() => t.close());

async function logged(): Promise<{ decision: string; operation: string; error_code: string | null }[]> {
  const c = new Client({ connectionString: t.databaseUrl });
  await c.connect();
  try {
    return (await c.query(`SELECT decision, operation, error_code FROM access_log ORDER BY seq`)).rows;
  } finally {
    await c.end();
  }
}

test("a mix of allowed, partial, refused and broken operations over HTTP and WebSocket is logged one for one", async () => {
  const before = (await logged()).length;
  const custodian = await t.token("carol", [Role.CUSTODIAN]);
  const sent: Promise<unknown>[] = [
    t.gql(`{ me { id } }`),
    t.gql(`{ quotes(first: 5) { nodes { id bid source } } }`),
    t.gql(`{ grants { id } }`),
    t.gql(`{ quotes(first: 100000) { nodes { id } } }`),
    t.gql(`{ nope }`),
    t.gql(`{ me { id }`),
    t.gql(`{ me { id } }`, { token: null }),
    t.gql(`{ ingestStatus { state } }`, { token: custodian }),
    t.gql(`mutation { requestAccess(entitlement: REALTIME, reason: "research") { id } }`),
  ];
  await Promise.all(sent);
  const ws = t.ws();
  await wsQuery(ws, `{ instruments { symbol } }`);
  await wsQuery(ws, `{ quotes(after: "bad!") { nodes { id } } }`);
  const entries = (await logged()).slice(before);
  expect(entries).toHaveLength(11);
  const decisions = entries.map((e) => e.decision).sort();
  expect(decisions.filter((d) => d === "DENIED").length).toBeGreaterThanOrEqual(5);
  expect(decisions).toContain("PARTIAL");
  expect(decisions).toContain("ALLOWED");
  expect(entries.filter((e) => e.operation === "MUTATION")).toHaveLength(1);
});
