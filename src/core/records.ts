/** A plain object (not null, not an array): what a decoded JSON or msgpack message is when it has fields. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
