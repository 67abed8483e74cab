import { createClient } from "graphql-ws";
import { SignJWT } from "jose";
import WebSocket from "ws";
import { createEventBus } from "../../src/events/bus";
import {
  startReplica,
  startTestPlatform,
  TEST_SECRET,
  testConfig,
  wsQuery,
  type TestPlatform,
} from "../support/server";

let t: TestPlatform;
beforeAll(async () => {
  t = await startTestPlatform();
});
afterAll(() => t.close());

/** `{ instrument(symbol:"A") { latestQuote { instrument { latestQuote { … } } } } }`, `levels` fields deep. */
function deepQuery(levels: number): string {
  const chain = Array.from({ length: levels - 2 }, (_, i) => (i % 2 ? "instrument" : "latestQuote"));
  const inner = chain.reduceRight((acc, field) => `${field} { ${acc} }`, "symbol");
  return `{ instrument(symbol: "A") { ${inner} } }`;
}

describe("limits over HTTP", () => {
  test("a 20-deep query is rejected before execution (200 under application/json, as the spec asks)", async () => {
    const { status, body } = await t.gql(deepQuery(20));
    expect(status).toBe(200);
    expect(body.data).toBeUndefined();
    expect(body.errors?.[0].extensions?.code).toBe("QUERY_TOO_COMPLEX");
    expect(body.errors?.[0].message).toMatch(/depth limit of 12/);
  });

  test("a query within the depth limit runs", async () => {
    const { body } = await t.gql(deepQuery(10));
    expect(body.errors).toBeUndefined();
  });

  test("depth through fragments is counted", async () => {
    const q = `query { ...F } fragment F on Query { instrument(symbol:"A") { latestQuote { instrument { latestQuote { instrument { latestQuote { instrument { latestQuote { instrument { latestQuote { instrument { latestQuote { symbol } } } } } } } } } } } } }`;
    const { body } = await t.gql(q);
    expect(body.errors?.[0].extensions?.code).toBe("QUERY_TOO_COMPLEX");
  });

  test("too many aliases are rejected", async () => {
    const q = `{ ${Array.from({ length: 40 }, (_, i) => `a${i}: me { id }`).join(" ")} }`;
    const { body } = await t.gql(q);
    expect(body.errors?.[0].extensions?.code).toBe("QUERY_TOO_COMPLEX");
    expect(body.errors?.[0].message).toMatch(/Aliases limit/i);
  });

  test("cost counts first: many large pages are too costly, small ones are fine", async () => {
    const page = (n: number) => `quotes(first: ${n}) { nodes { symbol instrument { name } } }`;
    const big = await t.gql(`{ ${Array.from({ length: 20 }, (_, i) => `q${i}: ${page(1000)}`).join(" ")} }`);
    expect(big.body.errors?.[0].extensions?.code).toBe("QUERY_TOO_COMPLEX");
    expect(big.body.errors?.[0].message).toMatch(/cost \d+ exceeds the limit of 50000/);
    const small = await t.gql(`{ ${Array.from({ length: 20 }, (_, i) => `q${i}: ${page(10)}`).join(" ")} }`);
    expect(small.body.errors).toBeUndefined();
  });

  test("first: 100000 via a variable is BAD_USER_INPUT before execution", async () => {
    const { body } = await t.gql(`query($n: Int) { quotes(first: $n) { nodes { id } } }`, {
      variables: { n: 100000 },
    });
    expect(body.data).toBeUndefined();
    expect(body.errors?.[0].extensions?.code).toBe("BAD_USER_INPUT");
  });

  test("parse and validation errors carry their codes", async () => {
    expect((await t.gql(`{ quotes( }`)).body.errors?.[0].extensions?.code).toBe("GRAPHQL_PARSE_FAILED");
    expect((await t.gql(`{ nope }`)).body.errors?.[0].extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
  });
});

describe("authentication over HTTP", () => {
  const q = `{ me { id } }`;
  const sign = (alg: string, key: Uint8Array, exp: number) =>
    new SignJWT({ roles: ["USER"] })
      .setProtectedHeader({ alg })
      .setSubject("mallory")
      .setExpirationTime(exp)
      .sign(key);
  const now = () => Math.floor(Date.now() / 1000);

  test("no token: 401 UNAUTHENTICATED", async () => {
    const { status, body } = await t.gql(q, { token: null });
    expect(status).toBe(401);
    expect(body.errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");
  });

  test.each([
    ["garbage", async () => "not.a.token"],
    ["the wrong key", async () => sign("HS256", new TextEncoder().encode("x".repeat(40)), now() + 60)],
    ["an expired token", async () => sign("HS256", new TextEncoder().encode(TEST_SECRET), now() - 60)],
    [
      "alg none",
      async () =>
        `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(`{"sub":"mallory","roles":["OWNER"],"exp":${now() + 60}}`).toString("base64url")}.`,
    ],
    [
      "a token without exp",
      async () =>
        new SignJWT({ roles: ["USER"] })
          .setProtectedHeader({ alg: "HS256" })
          .setSubject("x")
          .sign(new TextEncoder().encode(TEST_SECRET)),
    ],
  ])("%s: UNAUTHENTICATED", async (_name, make) => {
    const { status, body } = await t.gql(q, { token: await make() });
    expect(status).toBe(401);
    expect(body.errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");
    expect(body.data).toBeUndefined();
  });
});

describe("the WebSocket path applies the same rules", () => {
  test("queries run over graphql-ws", async () => {
    const r = await wsQuery(t.ws(), `{ me { id roles } }`);
    expect(r).toEqual({ data: { me: { id: "alice", roles: ["USER"] } } });
  });

  test("a 20-deep query is rejected", async () => {
    const r = await wsQuery(t.ws(), deepQuery(20));
    expect(r.errors?.[0].extensions?.code).toBe("QUERY_TOO_COMPLEX");
  });

  test("first: 100000 is BAD_USER_INPUT, a malformed cursor too", async () => {
    const c = t.ws();
    expect(
      (await wsQuery(c, `{ quotes(first: 100000) { nodes { id } } }`)).errors?.[0].extensions?.code,
    ).toBe("BAD_USER_INPUT");
    expect((await wsQuery(c, `{ quotes(after: "zz!") { nodes { id } } }`)).errors?.[0].extensions?.code).toBe(
      "BAD_USER_INPUT",
    );
  });

  test("too many aliases are rejected, and as many as allowed run", async () => {
    const aliased = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: me { id }`).join(" ")} }`;
    const c = t.ws();
    const refused = await wsQuery(c, aliased(40));
    expect(refused.data).toBeUndefined();
    expect(refused.errors?.[0].extensions?.code).toBe("QUERY_TOO_COMPLEX");
    expect(refused.errors?.[0].message).toMatch(/Aliases limit/i);
    expect((await wsQuery(c, aliased(30))).errors).toBeUndefined();
  });

  test("cost counts first, through variables too", async () => {
    const c = t.ws();
    const pages = `query($n: Int) { ${Array.from({ length: 20 }, (_, i) => `q${i}: quotes(first: $n) { nodes { symbol instrument { name } } }`).join(" ")} }`;
    const big = await wsQuery(c, pages, { n: 1000 });
    expect(big.errors?.[0].extensions?.code).toBe("QUERY_TOO_COMPLEX");
    expect(big.errors?.[0].message).toMatch(/cost \d+ exceeds the limit of 50000/);
    expect((await wsQuery(c, pages, { n: 10 })).errors).toBeUndefined();
  });

  test("MAX_ALIASES and MAX_COST as configured hold on both transports", async () => {
    const strict = await startReplica(
      t,
      createEventBus(),
      testConfig(t.databaseUrl, { MAX_ALIASES: "3", MAX_COST: "200" }),
    );
    try {
      const c = createClient({
        url: strict.wsUrl,
        webSocketImpl: WebSocket,
        retryAttempts: 0,
        connectionParams: { authorization: `Bearer ${await t.token()}` },
      });
      const http = async (query: string) => {
        const res = await fetch(strict.url, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${await t.token()}` },
          body: JSON.stringify({ query }),
        });
        return (await res.json()) as { errors?: { message: string; extensions?: Record<string, unknown> }[] };
      };
      try {
        const four = `{ a: me { id } b: me { id } c: me { id } d: me { id } }`;
        const three = `{ a: me { id } b: me { id } c: me { id } }`;
        const costly = `{ quotes(first: 300) { nodes { symbol } } }`;
        for (const run of [http, (q: string) => wsQuery(c, q)]) {
          expect((await run(four)).errors?.[0].message).toMatch(/Aliases limit of 3/i);
          expect((await run(three)).errors).toBeUndefined();
          const tooCostly = (await run(costly)).errors?.[0];
          expect(tooCostly?.extensions?.code).toBe("QUERY_TOO_COMPLEX");
          expect(tooCostly?.message).toMatch(/exceeds the limit of 200/);
          expect((await run(`{ quotes(first: 5) { nodes { symbol } } }`)).errors).toBeUndefined();
        }
      } finally {
        await c.dispose();
      }
    } finally {
      await strict.close();
    }
  });

  test("validation errors are reported, not skipped", async () => {
    const r = await wsQuery(t.ws(), `{ nope }`);
    expect(r.errors?.[0].extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
  });

  function closeOf(opts: Parameters<TestPlatform["ws"]>[0]): Promise<{ code: number; reason: string }> {
    return new Promise((resolve) => {
      t.ws({ ...opts, on: { closed: (e) => resolve(e as { code: number; reason: string }) } });
    });
  }

  test("no token closes the socket with 4403", async () => {
    expect((await closeOf({ connectionParams: {} })).code).toBe(4403);
  });

  test("a forged token closes the socket with 4403", async () => {
    expect((await closeOf({ connectionParams: { authorization: "Bearer x.y.z" } })).code).toBe(4403);
  });

  test("an open socket closes when its token expires, not before", async () => {
    // An expiry with room for the handshake on a loaded machine (the token is valid for 5 to 6 s).
    const exp = Math.floor(Date.now() / 1000) + 6;
    const token = await new SignJWT({ roles: ["USER"] })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("alice")
      .setExpirationTime(exp)
      .sign(new TextEncoder().encode(TEST_SECRET));
    let acknowledged = false;
    const closed = await new Promise<{ code: number; reason: string; at: number }>((resolve) =>
      t.ws({
        connectionParams: { authorization: `Bearer ${token}` },
        on: {
          connected: () => void (acknowledged = true),
          closed: (e) => {
            const { code, reason } = e as { code: number; reason: string };
            resolve({ code, reason, at: Date.now() });
          },
        },
      }),
    );
    expect(acknowledged).toBe(true);
    expect({ code: closed.code, reason: closed.reason }).toEqual({
      code: 4403,
      reason: "Forbidden: token expired",
    });
    // Closed by the expiry, not sooner (a timer may run a few ms ahead of the wall clock's reading).
    expect(closed.at).toBeGreaterThanOrEqual(exp * 1000 - 250);
  });
});
