import type { IncomingMessage } from "node:http";
import { randomUUID } from "node:crypto";
import { handleProtocols, makeServer, type Disposable, type ServerOptions } from "graphql-ws";
import type { WebSocket, WebSocketServer } from "ws";
import { log } from "../log";
import { websocketConnections } from "../metrics";

/** What graphql-ws's `extra` holds for each connection: the socket and its upgrade request. */
export interface WsExtra {
  socket: WebSocket;
  request: IncomingMessage;
}

/** A connection closed by the server (or by the ws library on a protocol error), other than normally. */
export interface ServerClose {
  code: number;
  reason: string;
  request: IncomingMessage;
  socket: WebSocket;
}

export interface GraphqlWsOptions<E extends WsExtra> {
  /** graphql-ws's server options (hooks, schema, execution). */
  server: ServerOptions<Record<string, unknown>, E>;
  /** Extra state per connection, beside the socket and request. */
  extra: (socket: WebSocket, request: IncomingMessage) => E;
  /** Called once for every connection the server closed with a code other than 1000 or 1001. */
  onServerClose?: (close: ServerClose) => void;
  /** Ping period; a peer that does not answer within it is cut. @default 12000 */
  keepAliveMs?: number;
}

/** How long a peer has to answer the server's close at shutdown before it is cut, ms. */
const CLOSE_WAIT_MS = 1000;

/** Codes of a normal close: not a refusal. */
const NORMAL = new Set([1000, 1001]);

/**
 * graphql-ws over a `ws` server: the protocol core (`makeServer`) bound to sockets, as graphql-ws's own
 * adapter does, with what the platform needs at the edge: every close the server initiates (its
 * refusals, and the ws library's own on oversized or malformed frames) is reported once, with the
 * connection it ended; unexpected errors are logged with an id and never sent as their message.
 */
export function serveGraphqlWs<E extends WsExtra>(
  wss: WebSocketServer,
  opts: GraphqlWsOptions<E>,
): Disposable {
  const server = makeServer(opts.server);
  const keepAliveMs = opts.keepAliveMs ?? 12_000;
  wss.options.handleProtocols = handleProtocols;
  wss.on("error", (err) => log.error({ err }, "WebSocket server error"));

  wss.on("connection", (socket, request) => {
    websocketConnections.inc();
    // The close this server asked for, if any: reported once the socket is closed.
    let closedByServer: { code: number; reason: string } | null = null;
    const closeSocket = socket.close.bind(socket);
    socket.close = (code?: number, reason?: string | Buffer) => {
      if (!closedByServer && socket.readyState <= socket.OPEN && code !== undefined)
        closedByServer = { code, reason: String(reason ?? "") };
      closeSocket(code, reason);
    };
    socket.on("error", (err: Error & { code?: string }) => {
      // ws closes the connection itself (1009 for an oversized message, 1007 for invalid UTF-8, 1002…).
      log.warn({ err: err.message, wsError: err.code }, "WebSocket protocol error: connection closed");
      closedByServer ??= { code: 0, reason: err.message };
    });

    let pongWait: NodeJS.Timeout | undefined;
    const ping = setInterval(() => {
      if (socket.readyState !== socket.OPEN) return;
      pongWait = setTimeout(() => socket.terminate(), keepAliveMs);
      socket.once("pong", () => clearTimeout(pongWait));
      socket.ping();
    }, keepAliveMs);

    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) =>
          new Promise<void>((resolve, reject) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            socket.send(data, (err) => (err ? reject(err) : resolve()));
          }),
        close: (code, reason) => socket.close(code, reason),
        onMessage: (cb) =>
          // binaryType "nodebuffer" (ws's default): one Buffer per message.
          socket.on("message", (data: Buffer) => {
            cb(data.toString("utf8")).catch((err: unknown) => {
              const errorId = randomUUID();
              log.error({ err, errorId }, "unexpected error handling a WebSocket message");
              socket.close(4500, `Internal server error (id ${errorId})`);
            });
          }),
      },
      opts.extra(socket, request),
    );

    socket.once("close", (code, reason) => {
      websocketConnections.dec();
      clearInterval(ping);
      clearTimeout(pongWait);
      const byServer = closedByServer;
      // The code the server sent (the peer may answer with another, or vanish: 1006).
      const sent = byServer?.code || code;
      if (byServer && !NORMAL.has(sent)) {
        opts.onServerClose?.({ code: sent, reason: byServer.reason || String(reason), request, socket });
      }
      void closed(code, String(reason));
    });
  });

  return {
    async dispose() {
      for (const client of wss.clients) client.close(1001, "Going away");
      // A peer that does not answer the close within a second is cut (ws would wait 30 s): its
      // subscriptions end, and their access-log entries are written, either way.
      const cut = setTimeout(() => {
        for (const client of wss.clients) client.terminate();
      }, CLOSE_WAIT_MS);
      wss.removeAllListeners();
      try {
        await new Promise<void>((resolve, reject) => wss.close((err) => (err ? reject(err) : resolve())));
      } finally {
        clearTimeout(cut);
      }
    },
  };
}
