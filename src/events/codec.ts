import { isRecord } from "../core/records";
import type { Topics } from "./bus";

/** What one message across replicas carries: the events of one tick, in the order they were published. */
export interface Frame {
  events: [keyof Topics, unknown][];
}

/** JSON with Dates kept as Dates: they travel as {"$d": iso}. */
export function encode(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key, v: unknown) {
    const raw = this[key];
    return raw instanceof Date ? { $d: raw.toISOString() } : v;
  });
}

export function decode(text: string): unknown {
  return JSON.parse(text, (_k, v: unknown) => {
    const d = isRecord(v) ? v.$d : undefined;
    return typeof d === "string" ? new Date(d) : v;
  }) as unknown;
}

/**
 * Encoded events (each `encode([topic, payload])`) packed in order into as few frames as hold them, each
 * of at most `max` by `sizeOf` (characters unless told).
 */
export function pack(parts: string[], max: number, sizeOf = (s: string) => s.length): string[] {
  const frames: string[] = [];
  let frame: string[] = [];
  let size = 0;
  const close = () => {
    if (frame.length) frames.push(`{"events":[${frame.join(",")}]}`);
    frame = [];
    size = 0;
  };
  for (const part of parts) {
    const n = sizeOf(part) + 1;
    if (size + n > max) close();
    frame.push(part);
    size += n;
  }
  close();
  return frames;
}
