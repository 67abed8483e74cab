import type { Client as WsClient } from "graphql-ws";

/** What a running subscription received so far, in order. */
export interface Recording<T> {
  events: { data: T; extensions?: Record<string, unknown> }[];
  /** Error results, and the error it ended with, if any. */
  errors: unknown[];
  /** True once the server completed or failed it. */
  ended: boolean;
  stop(): void;
}

/** Subscribes and records every event until `stop()` (or the server ends it). */
export function record<T>(
  client: WsClient,
  query: string,
  variables?: Record<string, unknown>,
): Recording<T> {
  const r: Recording<T> = { events: [], errors: [], ended: false, stop: () => {} };
  r.stop = client.subscribe<T>(
    { query, variables },
    {
      next: (e) => {
        if (e.errors?.length) r.errors.push(...e.errors);
        else r.events.push(e as Recording<T>["events"][number]);
      },
      error: (e) => {
        r.errors.push(e);
        r.ended = true;
      },
      complete: () => void (r.ended = true),
    },
  );
  return r;
}
