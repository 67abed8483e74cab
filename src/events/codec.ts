import { randomUUID } from "node:crypto";
import { isRecord } from "../core/records";
import { log } from "../log";
import type { EventBus, Topics } from "./bus";

/**
 * What one message across replicas carries: the events of one tick, in the order they were published,
 * and the bus that sent them (which delivered them to its own subscribers already).
 */
export interface Frame {
  from: string;
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
 * Encoded events (each `encode([topic, payload])`) of the bus `from` packed in order into as few frames
 * as hold them, each of at most `max` by `sizeOf` (characters unless told) besides the sender's id.
 */
export function pack(from: string, parts: string[], max: number, sizeOf = (s: string) => s.length): string[] {
  const frames: string[] = [];
  let frame: string[] = [];
  let size = 0;
  const head = `{"from":${JSON.stringify(from)},"events":[`;
  const close = () => {
    if (frame.length) frames.push(`${head}${frame.join(",")}]}`);
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

export interface TickBatcherOptions {
  /** Where an event too large to travel is delivered instead: this replica's subscribers. */
  local: EventBus;
  /** The largest encoded event that may travel, by `sizeOf` (characters unless told). */
  maxSize: number;
  sizeOf?: (s: string) => number;
  /** The transport, for the warning about an event too large for it. */
  via: string;
  /** Sends one tick's encoded events, in the order they were published (see `pack`, with `id`). */
  send: (parts: string[]) => void;
}

/**
 * What a bus across replicas publishes: each event delivered to this replica's subscribers at once, and
 * encoded to travel to the others, the events of one tick handed to `send` together on the next turn of
 * the event loop, so that a burst costs one round trip. Its own frames coming back are skipped (see
 * `receive`), so this replica's subscribers never wait for the transport, and keep receiving while it
 * is down. An event too large for the transport is logged and stays on this replica.
 */
export class TickBatcher {
  /** This bus's id in the frames it sends. */
  readonly id = randomUUID();
  private pending: string[] = [];
  private scheduled = false;

  constructor(private readonly opts: TickBatcherOptions) {}

  publish<T extends keyof Topics>(topic: T, payload: Topics[T]): void {
    this.opts.local.publish(topic, payload);
    const part = encode([topic, payload]);
    const size = (this.opts.sizeOf ?? ((s: string) => s.length))(part);
    if (size > this.opts.maxSize) {
      log.warn(
        { topic, bytes: size },
        `event too large for ${this.opts.via}: delivered on this replica only`,
      );
      return;
    }
    this.pending.push(part);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Sends what is pending now. */
  flush(): void {
    this.scheduled = false;
    const parts = this.pending;
    this.pending = [];
    if (parts.length) this.opts.send(parts);
  }

  /** Delivers a frame that came over the transport to this replica's subscribers, unless it sent it. */
  receive(text: string): void {
    try {
      const frame = decode(text) as Frame;
      if (frame.from === this.id) return;
      for (const [topic, event] of frame.events) this.opts.local.publish(topic, event as never);
    } catch (err) {
      log.warn({ err }, "unreadable event on the bus");
    }
  }
}
