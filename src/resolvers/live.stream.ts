import { DelayLine, MAX_HELD } from "../events/delay-line";
import { log } from "../log";
import type { PolicySession } from "../policy/session";

/** Something a subscription will emit once the caller may see data as new as `at` (epoch ms). */
export interface Due<K> {
  at: number;
  key: K;
}

/** How one subscription field turns bus events into results. */
export interface LiveSpec<E, K, O> {
  /** A name for logs. */
  what: string;
  /** What of one bus event concerns this subscription. */
  select(event: E): Due<K>[];
  /** Turns keys that became deliverable together into results: one read for all of them. */
  load(keys: K[], delayed: boolean): Promise<O[]>;
}

export interface LiveOptions {
  /** The operation's policy session (null with the policy layer off). */
  policy: PolicySession | null;
  /** The newest time the caller may see now, or null for real time: `delayCutoff(ctx)`. */
  cutoff: () => Date | null;
  /** @default MAX_HELD */
  maxHeld?: number;
  /** How often held items are checked against a moving cutoff, wall ms. @default 200 */
  pollMs?: number;
}

const TICK = Symbol("tick");

/**
 * A subscription's source stream: bus events selected and loaded per `spec`, each held in a per-
 * subscription delay line until the caller's cutoff passes its time (delivered at once with REALTIME).
 * Work happens only inside `next()`, i.e. between the events the executor runs, so refreshing the policy
 * session here never races the resolution of an event; `return()` ends it at once, pending reads included.
 */
export function liveStream<E, K, O>(
  events: AsyncIterableIterator<E>,
  spec: LiveSpec<E, K, O>,
  opts: LiveOptions,
): AsyncIterableIterator<O> {
  const line = new DelayLine<K>(spec.what, opts.maxHeld ?? MAX_HELD);
  const pollMs = opts.pollMs ?? 200;
  const out: O[] = [];
  let pending: Promise<IteratorResult<E>> | null = null;
  let closed = false;

  const cutoffMs = async (): Promise<number | null> => {
    // Entitlements as they are now (re-read when older than a second), not as of the last event sent:
    // a stream can stay quiet for minutes, and a revoked REALTIME must hold the very next event back.
    await opts.policy?.beginEvent();
    return opts.cutoff()?.getTime() ?? null;
  };

  const emit = async (keys: K[], delayed: boolean): Promise<void> => {
    if (!keys.length) return;
    try {
      out.push(...(await spec.load(keys, delayed)));
    } catch (err) {
      log.error({ err, what: spec.what }, "live subscription: reading an event's data failed; skipped");
    }
  };

  const close = async (): Promise<IteratorResult<O>> => {
    if (!closed) {
      closed = true;
      if (line.dropped) log.warn({ what: spec.what, dropped: line.dropped }, "delay line dropped events");
      await events.return?.();
    }
    out.length = 0;
    return { done: true, value: undefined };
  };

  return {
    async next() {
      for (;;) {
        if (closed) return { done: true, value: undefined };
        if (out.length) return { done: false, value: out.shift()! };
        pending ??= events.next();
        let timer: NodeJS.Timeout | undefined;
        const r = line.size
          ? await Promise.race([
              pending,
              new Promise<typeof TICK>((ok) => (timer = setTimeout(ok, pollMs, TICK))),
            ])
          : await pending;
        clearTimeout(timer);
        if (closed) continue;
        if (r !== TICK) {
          pending = null;
          if (r.done) {
            await close();
            continue;
          }
        }
        const due = r === TICK ? [] : spec.select(r.value);
        if (!due.length && !line.size) continue;
        const cutoff = await cutoffMs();
        const ready = line.release(cutoff);
        for (const d of due) {
          if (cutoff === null || d.at <= cutoff) ready.push(d.key);
          else line.hold(d.at, d.key);
        }
        await emit(ready, cutoff !== null);
      }
    },
    return: close,
    async throw(err: unknown) {
      await close();
      throw err;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
