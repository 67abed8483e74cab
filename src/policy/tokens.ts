import { LRUCache } from "lru-cache";
import { SignJWT, createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from "jose";
import { UnauthenticatedError } from "../errors";
import { parseRoles, type Principal, type Role } from "./principal";

const ISSUER = "tickgraph";
/** Longest principal id a token may carry (ids are logged and compared, never parsed). */
const MAX_SUBJECT = 200;
/** Verified tokens remembered (the least recently used forgotten first). */
const VERIFIED_TOKENS = 10_000;

export interface TokenVerifier {
  /** The principal a bearer token stands for; UnauthenticatedError when it is missing, forged or expired. */
  verify(token: string | undefined): Promise<Principal>;
}

/** HS256 with a shared secret, or RS256/ES256 against a JWKS; the algorithm is pinned, `none` never passes. */
export function createTokenVerifier(opts: { secret?: string; jwksUrl?: string }): TokenVerifier {
  let key: Uint8Array | JWTVerifyGetKey;
  let algorithms: string[];
  if (opts.jwksUrl) {
    key = createRemoteJWKSet(new URL(opts.jwksUrl));
    algorithms = ["RS256", "ES256"];
  } else if (opts.secret) {
    key = new TextEncoder().encode(opts.secret);
    algorithms = ["HS256"];
  } else {
    throw new Error("a token verifier needs a secret or a JWKS URL");
  }
  // A token verified once stays valid until it expires: the same bearer on every request of a client
  // then costs a map lookup instead of a signature check.
  const verified = new LRUCache<string, Principal>({ max: VERIFIED_TOKENS });
  return {
    async verify(token) {
      if (!token) throw new UnauthenticatedError();
      const known = verified.get(token);
      if (known) {
        if (known.expiresAt! * 1000 > Date.now()) return known;
        verified.delete(token);
        throw new UnauthenticatedError("The token has expired.");
      }
      try {
        const { payload } = await jwtVerify(token, key as Uint8Array, {
          algorithms,
          requiredClaims: ["sub", "exp"],
        });
        if (typeof payload.sub !== "string" || !payload.sub || payload.sub.length > MAX_SUBJECT) {
          throw new UnauthenticatedError(
            `The token's sub claim must be a string of 1 to ${MAX_SUBJECT} characters.`,
          );
        }
        const principal = { id: payload.sub, roles: parseRoles(payload.roles), expiresAt: payload.exp };
        verified.set(token, principal);
        return principal;
      } catch (err) {
        if (err instanceof UnauthenticatedError) throw err;
        if (err instanceof errors.JWTExpired) throw new UnauthenticatedError("The token has expired.");
        throw new UnauthenticatedError("The token is not valid.");
      }
    },
  };
}

/** Parses "90s", "15m", "1h", "7d" into seconds. */
export function parseTtl(ttl: string): number {
  const m = /^(\d+)\s*([smhd])$/.exec(ttl.trim());
  if (!m) throw new Error(`--ttl "${ttl}" is not a duration: use e.g. 90s, 15m, 1h or 7d`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "s" | "m" | "h" | "d"];
}

/** A signed HS256 token for `sub` with `roles`, valid for `ttlSeconds`. */
export async function mintToken(
  secret: string,
  sub: string,
  roles: Role[],
  ttlSeconds: number,
): Promise<string> {
  return (
    new SignJWT({ roles })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(sub)
      .setIssuer(ISSUER)
      .setIssuedAt()
      // Rounded up: a token lives at least its ttl (rounded down, a 1 s token could live 0 ms).
      .setExpirationTime(Math.ceil(Date.now() / 1000) + ttlSeconds)
      .sign(new TextEncoder().encode(secret))
  );
}

/** The token of an `Authorization: Bearer …` header (or connection_init payload value). */
export function bearerToken(header: unknown): string | undefined {
  if (typeof header !== "string") return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
  return m?.[1];
}
