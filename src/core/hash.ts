/** FNV-1a (32 bits) of a string's UTF-8 bytes: a stable spread of names over buckets and lock keys. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, "utf8")) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}
