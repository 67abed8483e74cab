import { randomUUID } from "node:crypto";
import { createEventBus, type EventBus } from "../../src/events/bus";
import { createNatsEventBus } from "../../src/events/nats-bus";
import { createPgEventBus } from "../../src/events/pg-bus";

/** The buses replicas can share events on; "memory" reaches only its own process. */
export type BusKind = "memory" | "postgres" | "nats";
export const BUSES: BusKind[] = ["memory", "postgres", "nats"];
/** The buses that carry events across replicas. */
export const SHARED_BUSES: BusKind[] = ["postgres", "nats"];

/** The machine's NATS server (JetStream on; `.ci/run` starts it). */
export const NATS_URL = process.env.NATS_URL || "nats://127.0.0.1:4222";

/**
 * The settings of a platform on `kind`. Each call on NATS takes a subject of its own: test files run in
 * parallel on one NATS server, as deployments may, and must not hear each other.
 */
export function busEnv(kind: BusKind, subject = newSubject()): Record<string, string> {
  return kind === "nats" ? { EVENT_BUS: "nats", NATS_URL, NATS_SUBJECT: subject } : { EVENT_BUS: kind };
}

export function newSubject(): string {
  return `tickgraph-test.${randomUUID().slice(0, 8)}`;
}

export type ClosableBus = EventBus & { close(): Promise<void> };

/** A second replica's bus, sharing the events of a platform started with `env` (from `busEnv`) on `databaseUrl`. */
export async function openBus(env: Record<string, string>, databaseUrl: string): Promise<ClosableBus> {
  switch (env.EVENT_BUS) {
    case "postgres":
      return createPgEventBus(databaseUrl);
    case "nats":
      return createNatsEventBus({ url: env.NATS_URL, subject: env.NATS_SUBJECT });
    default:
      return { ...createEventBus(), close: async () => undefined };
  }
}
