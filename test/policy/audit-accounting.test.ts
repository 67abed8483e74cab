import { createHash } from "node:crypto";
import { Client } from "pg";
import { Role } from "../../src/policy/principal";
import { seedQuotes } from "../support/seed";
import { startTestPlatform, wsQuery, type TestPlatform } from "../support/server";

// Every operation a client sends, whatever becomes of it, leaves exactly one access-log entry.
let t: TestPlatform;
beforeAll(async () => {
  t = await startTestPlatform({}, {}, (url) => seedQuotes(url, { symbols: ["AAPL"], perSymbol: 3 }));
});
afterAll(() => t.close());

interface Logged {
  principal: string | null;
  operation: string;
  hash: string;
  decision: string;
  error_code: string | null;
}

async function logged(): Promise<Logged[]> {
  const c = new Client({ connectionString: t.databaseUrl });
  await c.connect();
  try {
    return (
      await c.query(
        `SELECT principal, operation, operation_hash AS hash, decision, error_code FROM access_log ORDER BY seq`,
      )
    ).rows;
  } finally {
    await c.end();
  }
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

test("a mix of allowed, partial, refused and broken operations over HTTP and WebSocket is logged one for one", async () => {
  const before = (await logged()).length;
  const custodian = await t.token("carol", [Role.CUSTODIAN]);
  // Each operation, who sends it, and the entry it must leave: decision and error code.
  const cases: [string, "alice" | "carol" | null, "http" | "ws", string, string, string | null][] = [
    [`{ me { id } }`, "alice", "http", "QUERY", "ALLOWED", null],
    [`{ quotes(first: 5) { nodes { id bid source } } }`, "alice", "http", "QUERY", "PARTIAL", "FORBIDDEN"],
    [`{ grants { id } }`, "alice", "http", "QUERY", "DENIED", "FORBIDDEN"],
    [`{ quotes(first: 100000) { nodes { id } } }`, "alice", "http", "QUERY", "DENIED", "BAD_USER_INPUT"],
    [`{ nope }`, "alice", "http", "QUERY", "DENIED", "GRAPHQL_VALIDATION_FAILED"],
    [`{ me { id }`, "alice", "http", "QUERY", "DENIED", "GRAPHQL_PARSE_FAILED"],
    [`{ me { id } }`, null, "http", "QUERY", "DENIED", "UNAUTHENTICATED"],
    [`{ ingestStatus { state } }`, "carol", "http", "QUERY", "ALLOWED", null],
    [
      `mutation { requestAccess(entitlement: REALTIME, reason: "research") { id } }`,
      "alice",
      "http",
      "MUTATION",
      "ALLOWED",
      null,
    ],
    [`{ instruments { symbol } }`, "alice", "ws", "QUERY", "ALLOWED", null],
    [`{ quotes(after: "bad!") { nodes { id } } }`, "alice", "ws", "QUERY", "ALLOWED", "BAD_USER_INPUT"],
  ];
  const tokens = { alice: undefined, carol: custodian };
  await Promise.all(
    cases
      .filter((c) => c[2] === "http")
      .map(([query, who]) => t.gql(query, { token: who === null ? null : tokens[who] })),
  );
  const ws = t.ws();
  for (const [query] of cases.filter((c) => c[2] === "ws")) await wsQuery(ws, query);

  const entries = (await logged()).slice(before);
  const key = (principal: string | null, hash: string) => `${principal} ${hash}`;
  const got = entries.map((e) => [key(e.principal, e.hash), e.operation, e.decision, e.error_code]).sort();
  const want = cases
    .map(([query, who, , operation, decision, code]) => [key(who, sha256(query)), operation, decision, code])
    .sort();
  expect(got).toEqual(want);
});
