import { Repeater, SlidingBuffer } from "@graphql-yoga/subscription";
import type { CommittedTrades } from "../core/trades";
import type { AccessLogRecord } from "../policy/audit";
import type { WindowsEvent } from "../windows/window.engine";

/** Topic names: the routing keys of the in-process bus. */
export enum Topic {
  /** Each access-log entry, once its batch is committed. */
  ACCESS_LOG = "ACCESS_LOG",
  /** Windows opened, revised or finalized by one window-engine step. */
  WINDOWS = "WINDOWS",
  /** New trades of a committed ingest batch, in pieces small enough for one NOTIFY. */
  QUOTES = "QUOTES",
  /**
   * Events may have been lost (the connection that carries them across replicas was down and is back):
   * live views re-read their latest value from the database. Published on each replica, never sent.
   */
  RESYNC = "RESYNC",
}

/** The payload each topic carries. Add a topic here with its payload type and publishers are checked. */
export interface Topics {
  [Topic.ACCESS_LOG]: AccessLogRecord;
  [Topic.WINDOWS]: WindowsEvent;
  [Topic.QUOTES]: CommittedTrades;
  [Topic.RESYNC]: { at: Date };
}

/** The in-process event bus: domain code publishes, live fields subscribe (through the request context). */
export interface EventBus {
  publish<T extends keyof Topics>(topic: T, payload: Topics[T]): void;
  subscribe<T extends keyof Topics>(topic: T): AsyncIterableIterator<Topics[T]>;
  /** Whether anyone may be listening to `topic` (so that costly payloads are made only when wanted). */
  listening(topic: keyof Topics): boolean;
}

/** How many undelivered events a subscriber may fall behind before its oldest are dropped. @default 1024 */
const SUBSCRIBER_BUFFER = 1024;

export function createEventBus(): EventBus {
  const listeners = new Map<keyof Topics, Set<(payload: never) => void>>();
  return {
    listening: (topic) => (listeners.get(topic)?.size ?? 0) > 0,
    publish(topic, payload) {
      for (const listener of listeners.get(topic) ?? []) listener(payload as never);
    },
    subscribe<T extends keyof Topics>(topic: T) {
      // One buffer per subscriber: a slow one loses its oldest events (a live view may skip; the
      // stored data stays the source of truth) and never slows or fails the publisher.
      return new Repeater<Topics[T]>((push, stop) => {
        const listener = (payload: Topics[T]) => void push(payload).catch(() => {});
        let set = listeners.get(topic);
        if (!set) listeners.set(topic, (set = new Set()));
        set.add(listener);
        void stop.then(() => set.delete(listener));
      }, new SlidingBuffer(SUBSCRIBER_BUFFER));
    },
  };
}
