import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, type JWK, type KeyLike } from "jose";
import { startTestPlatform, TEST_SECRET, wsQuery, type TestPlatform } from "../support/server";

// JWKS_URL: tokens signed with RS256 or ES256 by an identity provider, checked against its key set,
// here served by a local HTTP endpoint as a provider would.
let jwks: Server;
let t: TestPlatform;
const keys: Record<"RS256" | "ES256", { privateKey: KeyLike; jwk: JWK }> = {} as never;
let fetches = 0;

beforeAll(async () => {
  for (const alg of ["RS256", "ES256"] as const) {
    const { privateKey, publicKey } = await generateKeyPair(alg);
    keys[alg] = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid: `key-${alg}`, alg, use: "sig" } };
  }
  jwks = createServer((req, res) => {
    if (req.url !== "/.well-known/jwks.json") return void res.writeHead(404).end();
    fetches++;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: [keys.RS256.jwk, keys.ES256.jwk] }));
  });
  await new Promise<void>((r) => jwks.listen(0, "127.0.0.1", r));
  const { port } = jwks.address() as AddressInfo;
  t = await startTestPlatform({ JWT_SECRET: "", JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json` });
});
afterAll(async () => {
  await t?.close();
  await new Promise((r) => jwks?.close(r));
});

function sign(alg: string, key: KeyLike | Uint8Array, kid: string, sub = "ida", roles = ["USER"]) {
  return new SignJWT({ roles })
    .setProtectedHeader({ alg, kid })
    .setSubject(sub)
    .setExpirationTime("10m")
    .sign(key);
}

test.each(["RS256", "ES256"] as const)("a token signed %s with a key of the set is accepted", async (alg) => {
  const token = await sign(alg, keys[alg].privateKey, `key-${alg}`, `ida-${alg}`, ["USER", "STEWARD"]);
  const { status, body } = await t.gql(`{ me { id roles } }`, { token });
  expect(status).toBe(200);
  expect(body).toEqual({ data: { me: { id: `ida-${alg}`, roles: ["USER", "STEWARD"] } } });
  const ws = t.ws({ connectionParams: { authorization: `Bearer ${token}` } });
  expect(await wsQuery(ws, `{ me { id } }`)).toEqual({ data: { me: { id: `ida-${alg}` } } });
});

test("the key set is fetched once, not for each new token", async () => {
  const before = fetches;
  for (let i = 0; i < 5; i++) {
    const token = await sign("ES256", keys.ES256.privateKey, "key-ES256", `ida-${i}`);
    expect((await t.gql(`{ me { id } }`, { token })).body.data.me.id).toBe(`ida-${i}`);
  }
  expect(fetches - before).toBe(0);
  expect(fetches).toBeGreaterThan(0);
});

test.each([
  [
    "a key outside the set, under a known kid",
    async () => sign("RS256", (await generateKeyPair("RS256")).privateKey, "key-RS256"),
  ],
  ["an unknown kid", async () => sign("ES256", (await generateKeyPair("ES256")).privateKey, "key-other")],
  [
    "HS256 with the server's former shared secret",
    async () => sign("HS256", new TextEncoder().encode(TEST_SECRET), "key-RS256"),
  ],
  [
    "the public key's modulus as an HS256 secret",
    async () => sign("HS256", new TextEncoder().encode(keys.RS256.jwk.n!), "key-RS256"),
  ],
  [
    "alg none",
    async () =>
      `${Buffer.from('{"alg":"none","kid":"key-RS256"}').toString("base64url")}.${Buffer.from(
        `{"sub":"mallory","roles":["OWNER"],"exp":${Math.floor(Date.now() / 1000) + 60}}`,
      ).toString("base64url")}.`,
  ],
])("%s: 401 UNAUTHENTICATED, and the socket closes with 4403", async (_name, make) => {
  const token = await make();
  const { status, body } = await t.gql(`{ me { id } }`, { token });
  expect(status).toBe(401);
  expect(body.errors?.[0].extensions?.code).toBe("UNAUTHENTICATED");
  const closed = await new Promise<number>((resolve) =>
    t.ws({
      connectionParams: { authorization: `Bearer ${token}` },
      on: { closed: (e) => resolve((e as { code: number }).code) },
    }),
  );
  expect(closed).toBe(4403);
});
