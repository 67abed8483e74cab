import { SignJWT } from "jose";
import { startTestPlatform, TEST_SECRET, wsQuery, type TestPlatform } from "./support/server";

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

  test("the socket closes when the token expires", async () => {
    const token = await t.token("alice", undefined, 1);
    const closed = await closeOf({ connectionParams: { authorization: `Bearer ${token}` } });
    expect({ code: closed.code, reason: closed.reason }).toEqual({
      code: 4403,
      reason: "Forbidden: token expired",
    });
  });
});
