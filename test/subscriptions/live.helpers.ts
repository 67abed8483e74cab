import type { Client as WsClient } from "graphql-ws";

export interface Event<T> {
  data: T;
  extensions?: Record<string, unknown>;
  /** What `onEvent` returned when the event arrived (e.g. the market clock then). */
  seen: unknown;
}

/**
 * Subscribes and collects events until `done(events)` holds, then completes the subscription. Fails on
 * an error result, on the server ending the stream, or after `giveUpMs` (so a broken stream fails rather
 * than hangs the file).
 */
export function collect<T>(
  client: WsClient,
  query: string,
  done: (events: Event<T>[]) => boolean,
  opts: { variables?: Record<string, unknown>; onEvent?: () => unknown; giveUpMs?: number } = {},
): Promise<Event<T>[]> {
  return new Promise((resolve, reject) => {
    const events: Event<T>[] = [];
    let stop = () => {};
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`gave up after ${events.length} events of ${query}`));
    }, opts.giveUpMs ?? 20_000);
    stop = client.subscribe<T>(
      { query, variables: opts.variables },
      {
        next: (r) => {
          if (r.errors?.length) {
            clearTimeout(timer);
            stop();
            reject(new Error(JSON.stringify(r.errors)));
            return;
          }
          const seen = opts.onEvent?.();
          events.push({ data: r.data as T, extensions: r.extensions as Record<string, unknown>, seen });
          if (done(events)) {
            clearTimeout(timer);
            stop();
            resolve(events);
          }
        },
        error: (e) => {
          clearTimeout(timer);
          reject(e instanceof Error ? e : new Error(JSON.stringify(e)));
        },
        complete: () => {
          clearTimeout(timer);
          reject(new Error(`the server ended ${query} after ${events.length} events`));
        },
      },
    );
  });
}
