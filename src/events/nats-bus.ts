import { connect, type NatsConnection } from "@nats-io/transport-node";
import { log } from "../log";
import { natsConnected, natsReconnects } from "../metrics";
import { createEventBus, Topic, type EventBus } from "./bus";
import { pack, TickBatcher } from "./codec";

export interface NatsEventBus extends EventBus {
  close(): Promise<void>;
}

export interface NatsBusOptions {
  /** NATS server URLs, comma-separated. */
  url: string;
  /** The subject this deployment's replicas share. */
  subject: string;
  /** The connection's name on the server. @default "tickgraph-bus" */
  name?: string;
  /** Wait between reconnect attempts, ms. @default 250 */
  reconnectMs?: number;
}

/** Room left in a message for the frame around its events. */
const FRAME_OVERHEAD = 128;
/**
 * Events are packed into messages of up to this many bytes: many small events go in few messages, and
 * no message is so large that encoding or parsing it holds up either replica's event loop.
 */
const PACK_BYTES = 64 * 1024;

/**
 * The bus across replicas on core NATS: events published on any replica reach subscribers on every
 * other replica through one subject, as the Postgres bus does through NOTIFY, and its own at once. The
 * events of one tick travel packed into messages of up to 64 KiB (an event alone may fill the server's
 * max_payload, 1 MiB by default); NATS keeps a publisher's messages in order for each subscriber, so
 * every replica sees them in the order they were published. An event too large for one message is logged and delivered locally only.
 *
 * No JetStream: delivery is at most once. While the connection is down, events from elsewhere are lost
 * (what this replica publishes meanwhile waits in the client's reconnect buffer); once it is back, RESYNC
 * is published locally and live views re-read from the database, which stays the source of truth.
 */
export async function createNatsEventBus(opts: NatsBusOptions): Promise<NatsEventBus> {
  const local = createEventBus();
  const subject = `${opts.subject}.events`;
  const nc: NatsConnection = await connect({
    servers: opts.url.split(",").map((s) => s.trim()),
    name: opts.name ?? "tickgraph-bus",
    // Never give up: a replica waits for NATS as it waits for its LISTEN connection.
    maxReconnectAttempts: -1,
    reconnectTimeWait: opts.reconnectMs ?? 250,
    // A dead server is noticed within a few seconds even when no socket error says so.
    pingInterval: 2000,
    maxPingOut: 2,
    noEcho: true,
  });
  natsConnected.set(1);
  const maxBytes = Math.max(1024, nc.info?.max_payload ?? 1024 * 1024) - FRAME_OVERHEAD;
  const text = new TextDecoder();
  void (async () => {
    let lostAt: number | null = null;
    for await (const s of nc.status()) {
      if (s.type === "disconnect" && lostAt === null) {
        lostAt = Date.now();
        natsConnected.set(0);
        log.warn(
          { server: s.server },
          "NATS connection lost: events from other replicas wait for it to come back",
        );
      } else if (s.type === "reconnect") {
        log.info(
          { server: s.server, downMs: lostAt === null ? null : Date.now() - lostAt },
          "NATS connection back",
        );
        lostAt = null;
        natsConnected.set(1);
        natsReconnects.inc();
        local.publish(Topic.RESYNC, { at: new Date() });
      }
    }
  })();

  let failing = false;
  const byteLength = (s: string) => Buffer.byteLength(s);
  const batcher: TickBatcher = new TickBatcher({
    local,
    maxSize: maxBytes,
    sizeOf: byteLength,
    via: "NATS",
    send: (parts) => {
      const frames = pack(batcher.id, parts, Math.min(PACK_BYTES, maxBytes), byteLength);
      try {
        for (const frame of frames) nc.publish(subject, frame);
        failing = false;
      } catch (err) {
        // Only once closed: while reconnecting the client buffers what is published.
        if (!failing)
          log.warn(
            { err: (err as Error).message },
            "NATS publish failed: events are not reaching other replicas",
          );
        failing = true;
      }
    },
  });

  // Its own messages are not echoed back (noEcho): its subscribers had them at once.
  nc.subscribe(subject, {
    callback(err, msg) {
      if (err) return log.warn({ err: err.message }, "NATS subscription failed");
      batcher.receive(text.decode(msg.data));
    },
  });

  return {
    publish: (topic, payload) => batcher.publish(topic, payload),
    subscribe: (topic) => local.subscribe(topic),
    // Subscribers on other replicas are not known here: assume there may be some.
    listening: () => true,
    async close() {
      batcher.flush();
      natsConnected.set(0);
      if (nc.isClosed()) return;
      // What was published goes out first; a server that is down gets 2 s to come back.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        nc.flush().catch(() => undefined),
        new Promise((r) => (timer = setTimeout(r, 2000))),
      ]);
      clearTimeout(timer);
      await nc.close();
    },
  };
}
