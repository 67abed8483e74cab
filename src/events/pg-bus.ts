import { Client } from "pg";
import { log } from "../log";
import { createEventBus, type EventBus, type Topics } from "./bus";

/** The NOTIFY channel all replicas listen on. */
export const CHANNEL = "tickgraph_events";
/** NOTIFY payloads must stay under 8000 bytes; events are packed into frames below this. */
const MAX_FRAME = 7500;

export interface PgEventBus extends EventBus {
  close(): Promise<void>;
}

/** JSON with Dates kept as Dates: they travel as {"$d": iso}. */
function encode(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key, v) {
    const raw = this[key];
    return raw instanceof Date ? { $d: raw.toISOString() } : v;
  });
}

function decode(text: string): unknown {
  return JSON.parse(text, (_k, v) =>
    v && typeof v === "object" && typeof v.$d === "string" ? new Date(v.$d) : v,
  );
}

interface Frame {
  events: [keyof Topics, unknown][];
}

/**
 * The bus across replicas: events published on any replica reach subscribers on every replica (itself
 * included) through Postgres LISTEN/NOTIFY. Publishes of one tick are packed into as few NOTIFYs as fit;
 * an event too large for one NOTIFY is logged and delivered locally only.
 */
export async function createPgEventBus(url: string): Promise<PgEventBus> {
  const local = createEventBus();
  const listener = new Client({ connectionString: url, application_name: "tickgraph-bus" });
  const sender = new Client({ connectionString: url, application_name: "tickgraph-bus" });
  await Promise.all([listener.connect(), sender.connect()]);
  listener.on("notification", (msg) => {
    if (msg.channel !== CHANNEL || !msg.payload) return;
    try {
      const frame = decode(msg.payload) as Frame;
      for (const [topic, payload] of frame.events) local.publish(topic, payload as never);
    } catch (err) {
      log.warn({ err }, "unreadable event on the bus");
    }
  });
  for (const c of [listener, sender])
    c.on("error", (err) => log.error({ err }, "event bus connection failed"));
  await listener.query(`LISTEN ${CHANNEL}`);

  let pending: string[] = [];
  let scheduled = false;
  // The sender runs its queries in order: the last one settled means every earlier one did.
  let sent: Promise<unknown> = Promise.resolve();
  const flush = () => {
    scheduled = false;
    const parts = pending;
    pending = [];
    const payloads: string[] = [];
    let frame: string[] = [];
    let size = 0;
    const close = () => {
      if (frame.length) payloads.push(`{"events":[${frame.join(",")}]}`);
      frame = [];
      size = 0;
    };
    for (const part of parts) {
      if (size + part.length + 1 > MAX_FRAME) close();
      frame.push(part);
      size += part.length + 1;
    }
    close();
    if (!payloads.length) return;
    // One statement for the whole tick, queued behind the previous one: the client never runs two
    // queries at once, and a burst of events costs one round trip.
    sent = sent
      .then(() =>
        sender.query(
          "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS f(p, n) ORDER BY n",
          [CHANNEL, payloads],
        ),
      )
      .catch((err) => log.error({ err }, "NOTIFY failed"));
  };

  return {
    publish(topic, payload) {
      const part = encode([topic, payload]);
      if (part.length > MAX_FRAME) {
        log.warn({ topic, bytes: part.length }, "event too large for NOTIFY: delivered on this replica only");
        local.publish(topic, payload);
        return;
      }
      pending.push(part);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    subscribe: (topic) => local.subscribe(topic),
    // Subscribers on other replicas are not known here: assume there may be some.
    listening: () => true,
    async close() {
      flush();
      await sent;
      await Promise.allSettled([listener.end(), sender.end()]);
    },
  };
}
