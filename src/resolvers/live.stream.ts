import { DelayLine, MAX_HELD } from "../events/delay-line";
import { log } from "../log";
import type { PolicySession } from "../policy/session";
import type { LiveMark } from "./context.type";

/** An event of a live stream's source that says events may have been lost: re-read the current value. */
export const RESYNCED = Symbol("resynced");

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
  /**
   * The field's current value as the caller may see it now (`cutoff`: the newest time it may see, null for
   * real time), read from the database: sent first, and again after a RESYNC when it changed.
   */
  initial?(cutoff: Date | null): Promise<O[]>;
  /** Which part of the field's current value an item is (see `LiveMark`); none for a plain stream. */
  markOf?(item: O): LiveMark;
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
  /** Told the mark (and, for a resumable stream, the cursor) of each item as it is yielded. */
  onItem?: (mark: LiveMark | undefined, cursor?: string) => void;
}

const TICK = Symbol("tick");

/** The pending event; or, when `polling`, TICK if no event comes within `pollMs`. */
async function eventOrTick<T>(
  pending: Promise<T>,
  polling: boolean,
  pollMs: number,
): Promise<T | typeof TICK> {
  if (!polling) return pending;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      pending,
      new Promise<typeof TICK>((ok) => (timer = setTimeout(ok, pollMs, TICK))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A subscription's source stream: bus events selected and loaded per `spec`, each held in a per-
 * subscription delay line until the caller's cutoff passes its time (delivered at once with REALTIME).
 * Work happens only inside `next()`, i.e. between the events the executor runs, so refreshing the policy
 * session here never races the resolution of an event; `return()` ends it at once, pending reads included.
 */
export function liveStream<E, K, O>(
  events: AsyncIterableIterator<E | typeof RESYNCED>,
  spec: LiveSpec<E, K, O>,
  opts: LiveOptions,
): AsyncIterableIterator<O> {
  const line = new DelayLine<K>(spec.what, opts.maxHeld ?? MAX_HELD);
  const pollMs = opts.pollMs ?? 200;
  const out: O[] = [];
  let pending: Promise<IteratorResult<E | typeof RESYNCED>> | null = null;
  let closed = false;
  /** Whether the current value is to be read (first, and after a RESYNC). */
  let reread = spec.initial !== undefined;

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

  const readCurrent = async (): Promise<void> => {
    reread = false;
    const cutoff = await cutoffMs();
    try {
      out.push(...(await spec.initial!(cutoff === null ? null : new Date(cutoff))));
    } catch (err) {
      log.error({ err, what: spec.what }, "live subscription: reading the current value failed; skipped");
    }
  };

  const yielded = (item: O): IteratorResult<O> => {
    opts.onItem?.(spec.markOf?.(item));
    return { done: false, value: item };
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
        if (out.length) return yielded(out.shift()!);
        // Listening starts before the current value is read: what changes meanwhile comes as events.
        pending ??= events.next();
        if (reread) {
          await readCurrent();
          continue;
        }
        const r = await eventOrTick(pending, line.size > 0, pollMs);
        if (closed) continue;
        if (r !== TICK) {
          pending = null;
          if (r.done) {
            await close();
            continue;
          }
        }
        if (r !== TICK && r.value === RESYNCED) {
          reread = spec.initial !== undefined;
          continue;
        }
        const due = r === TICK ? [] : spec.select(r.value as E);
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

/** How a live field follows what is stored, in the order it was stored, from a position on. */
export interface TailSpec<E, P, O> {
  /** A name for logs. */
  what: string;
  /** Where to start: the current value to send first and the position after it, or a client's cursor. */
  start(cutoff: Date | null): Promise<{ items: O[]; position: P | null }>;
  /** Items stored after `after` (from the first when null), in stream order, at most `limit`. */
  read(after: P | null, limit: number): Promise<O[]>;
  positionOf(item: O): P;
  /** The item's time (epoch ms): a caller without REALTIME gets it once its cutoff reaches this. */
  timeOf(item: O): number;
  /** Whether a bus event may have stored something this stream follows (worth a read). */
  concerns(event: E): boolean;
  /**
   * The items an event carries, when it carries them whole: once caught up, a real-time stream takes
   * them from events (those after its position) instead of reading. Without it, or when it returns null
   * (the event says rows were stored without carrying them), the event is a read.
   */
  itemsOf?(event: E): O[] | null;
  /** Whether `a` comes after position `b`. Needed with `itemsOf`. */
  after?(a: P, b: P): boolean;
  markOf?(item: O): LiveMark;
  /** The cursor a client passes as `after` to resume right after the item. */
  cursorOf(item: O): string;
}

/** Rows read per statement while a tail catches up. */
const TAIL_PAGE = 1000;

/**
 * A subscription's source stream that follows stored rows from a position: it replays what was stored
 * after it, then continues with what is stored next, in the same order, so that nothing is skipped or
 * sent twice where the replay meets the live events (bus events only say when to read). A caller without
 * REALTIME gets the rows in order as its cutoff passes each row's time: a row waits for those before it.
 * A RESYNC reads again from the position, so nothing stored while events were lost is missed.
 */
export function tailStream<E, P, O>(
  events: AsyncIterableIterator<E | typeof RESYNCED>,
  spec: TailSpec<E, P, O>,
  opts: LiveOptions,
): AsyncIterableIterator<O> {
  const pollMs = opts.pollMs ?? 200;
  const out: O[] = [];
  let pending: Promise<IteratorResult<E | typeof RESYNCED>> | null = null;
  let closed = false;
  let started = false;
  let position: P | null = null;
  /** Something may have been stored after the position. */
  let dirty = true;
  /** The time of the first row the caller's cutoff has not reached (delivery waits for it). */
  let blockedAt: number | null = null;
  /** The last read found nothing more: real-time events may be taken as they come. */
  let caughtUp = false;

  const cutoffMs = async (): Promise<number | null> => {
    await opts.policy?.beginEvent();
    return opts.cutoff()?.getTime() ?? null;
  };

  const take = (items: O[], cutoff: number | null): void => {
    for (const item of items) {
      if (cutoff !== null && spec.timeOf(item) > cutoff) {
        blockedAt = spec.timeOf(item);
        return;
      }
      out.push(item);
      position = spec.positionOf(item);
    }
  };

  const readMore = async (): Promise<void> => {
    dirty = false;
    const cutoff = await cutoffMs();
    blockedAt = null;
    const items = await spec.read(position, TAIL_PAGE);
    take(items, cutoff);
    caughtUp = blockedAt === null && items.length < TAIL_PAGE;
    if (blockedAt === null && !caughtUp) dirty = true;
  };

  const close = async (): Promise<IteratorResult<O>> => {
    if (!closed) {
      closed = true;
      await events.return?.();
    }
    out.length = 0;
    return { done: true, value: undefined };
  };

  return {
    async next() {
      for (;;) {
        if (closed) return { done: true, value: undefined };
        if (out.length) {
          const item = out.shift()!;
          opts.onItem?.(spec.markOf?.(item), spec.cursorOf(item));
          return { done: false, value: item };
        }
        // Listening starts before the first read: what is stored meanwhile comes as events.
        pending ??= events.next();
        try {
          if (!started) {
            started = true;
            const cutoff = await cutoffMs();
            const first = await spec.start(cutoff === null ? null : new Date(cutoff));
            out.push(...first.items);
            position = first.position;
            continue;
          }
          if (dirty) {
            await readMore();
            continue;
          }
        } catch (err) {
          // Read again on the next event or tick rather than end the stream.
          dirty = true;
          log.error({ err, what: spec.what }, "live subscription: reading stored rows failed");
        }
        const r = await eventOrTick(pending, blockedAt !== null || dirty, pollMs);
        if (closed) continue;
        if (r !== TICK) {
          pending = null;
          if (r.done) {
            await close();
            continue;
          }
          if (r.value === RESYNCED) {
            dirty = true;
            caughtUp = false;
            continue;
          }
        }
        if (blockedAt !== null) {
          // Checked on every wake-up, an event's as much as a tick's: each event restarts the tick's timer,
          // so on a busy topic (events less than pollMs apart) a tick may never come. What the event
          // stored is after the blocking row: the read once the cutoff passes it finds it.
          const cutoff = opts.cutoff()?.getTime() ?? null;
          if (cutoff === null || cutoff >= blockedAt) dirty = true;
          continue;
        }
        if (r === TICK) continue;
        const event = r.value as E;
        if (!spec.concerns(event)) continue;
        if (caughtUp && spec.itemsOf && spec.after && opts.cutoff() === null) {
          const after = spec.after.bind(spec);
          const carried = spec.itemsOf(event);
          if (carried)
            take(
              carried.filter((o) => position === null || after(spec.positionOf(o), position)),
              null,
            );
          else dirty = true;
        } else dirty = true;
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
