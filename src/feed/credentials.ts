import { createHash, timingSafeEqual } from "node:crypto";

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/** Compares a key pair in constant time, so response timing never reveals how much of a guess was right. */
export function credentialsMatch(
  key: string,
  secret: string,
  expectedKey: string,
  expectedSecret: string,
): boolean {
  const keyOk = timingSafeEqual(digest(key), digest(expectedKey));
  const secretOk = timingSafeEqual(digest(secret), digest(expectedSecret));
  return keyOk && secretOk;
}
