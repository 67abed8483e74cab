import { Pool } from "pg";
import { notifyAll, PgListener } from "../db/listener";
import { log } from "../log";
import { createEventBus, Topic, type EventBus } from "./bus";
import { pack, TickBatcher } from "./codec";

/** The NOTIFY channel all replicas listen on. */
export const CHANNEL = "tickgraph_events";
/** NOTIFY payloads must stay under 8000 bytes; events are packed into frames below this. */
const MAX_FRAME = 7500;

export interface PgEventBus extends EventBus {
  close(): Promise<void>;
}

/** What the bus runs on: its own connections to `url`, or the process's listener and pool. */
export type PgBusSource = string | { listener: PgListener; pool: Pool };

/**
 * The bus across replicas: events published on any replica reach subscribers on every other replica
 * through Postgres LISTEN/NOTIFY, and its own at once (see TickBatcher). Publishes of one tick are
 * packed into as few NOTIFYs as fit; an event too large for one NOTIFY is logged and delivered locally
 * only. While the connection that
 * listens is down, events from elsewhere are lost: once it is back, RESYNC is published locally.
 */
export async function createPgEventBus(source: PgBusSource): Promise<PgEventBus> {
  const local = createEventBus();
  const owned = typeof source === "string";
  const listener = owned
    ? await PgListener.start({ url: source, applicationName: "tickgraph-bus" })
    : source.listener;
  const pool = owned
    ? new Pool({ connectionString: source, max: 1, application_name: "tickgraph-bus" })
    : source.pool;
  if (owned) pool.on("error", (err) => log.warn({ err: err.message }, "event bus connection failed"));
  let failing = false;
  // Each NOTIFY waits for the one before: events reach other replicas in the order they were published.
  let sent: Promise<unknown> = Promise.resolve();
  const batcher: TickBatcher = new TickBatcher({
    local,
    maxSize: MAX_FRAME,
    via: "NOTIFY",
    send: (parts) => {
      const payloads = pack(batcher.id, parts, MAX_FRAME);
      // One statement for the whole tick.
      sent = sent
        .then(() => notifyAll(pool, CHANNEL, payloads))
        .then(
          () => (failing = false),
          (err: Error) => {
            // Once per outage: the replicas resync when it is over.
            if (!failing)
              log.warn({ err: err.message }, "NOTIFY failed: events are not reaching other replicas");
            failing = true;
          },
        );
    },
  });
  const unlisten = await listener.listen(CHANNEL, {
    notify: (payload) => batcher.receive(payload),
    resync: () => local.publish(Topic.RESYNC, { at: new Date() }),
  });

  return {
    publish: (topic, payload) => batcher.publish(topic, payload),
    subscribe: (topic) => local.subscribe(topic),
    // Subscribers on other replicas are not known here: assume there may be some.
    listening: () => true,
    async close() {
      batcher.flush();
      await sent;
      await unlisten();
      if (owned) await Promise.allSettled([listener.close(), pool.end()]);
    },
  };
}
