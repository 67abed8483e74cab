import { log } from "../log";
import type { BatchWriter } from "./batch.writer";
import { streamTrade, type FeedRest } from "./feed.rest";
import type { Router } from "./router";
import type { IngestStats } from "./stats";
import type { Validator } from "./validator";

/** The feed's now: fixed by the feed's own clock when known, else wall time shifted by its snapshots. */
export class FeedClock {
  private offsetMs = 0;

  constructor(private readonly fixed?: () => Date) {}

  now(): number {
    return this.fixed ? this.fixed().getTime() : Date.now() + this.offsetMs;
  }

  /** The feed's newest trade is at `feedLatestMs`: its clock is at least there. */
  calibrate(feedLatestMs: number): void {
    if (!this.fixed) this.offsetMs = feedLatestMs - Date.now();
  }
}

export interface BackfillerOptions {
  rest: FeedRest;
  validator: Validator;
  writer: BatchWriter;
  router: Router;
  stats: IngestStats;
  clock: FeedClock;
  /** True once the ingest is closing: a backfill in progress stops between pages. */
  stopped: () => boolean;
  /** On reconnect, how far before the newest event time the backfill starts, ms. */
  lookbackMs: number;
  /** With no checkpoint, how much of the feed's recent history to load first, ms. */
  initialLookbackMs: number;
  /** Trades per REST page. */
  pageSize?: number;
}

/** One symbol's span of wanted ids, (after, upTo], and how far its pages got. */
interface Cursor {
  symbol: string;
  after: number;
  upTo: number;
  /** No checkpoint for the symbol: ids before the first one served precede the span. */
  fresh: boolean;
  startMs: number;
  token: string | null;
  done: boolean;
  buffer: Record<string, unknown>[];
  firstId: number | null;
}

const cursor = (c: Pick<Cursor, "symbol" | "after" | "upTo" | "fresh" | "startMs">): Cursor => ({
  ...c,
  token: null,
  done: false,
  buffer: [],
  firstId: null,
});

/** REST requests a backfill keeps in flight. */
const BACKFILL_REQUESTS = 16;

/**
 * Fetches from the feed's REST history what the stream did not deliver: after each (re)connect, before
 * any live frame, and for holes in the ids that stay open mid-stream. Trades go through the same
 * validator as the stream's, in event-time order across symbols.
 */
export class Backfiller {
  private lastGaps = new Set<string>();

  constructor(private readonly o: BackfillerOptions) {}

  /** After each (re)connect, before any live frame: fetch what the stream did not deliver. */
  async afterConnect(): Promise<void> {
    const { validator: v, rest, clock } = this.o;
    const latest = await rest.latest(v.symbols);
    let feedLatestMs = -Infinity;
    for (const l of latest.values()) feedLatestMs = Math.max(feedLatestMs, l.timeMs);
    if (Number.isFinite(feedLatestMs)) clock.calibrate(feedLatestMs);
    const now = Number.isFinite(feedLatestMs) ? feedLatestMs : clock.now();
    const resumeFrom = Math.min(v.latestEventMs ?? now, now) - this.o.lookbackMs;
    const cursors: Cursor[] = [];
    for (const symbol of v.symbols) {
      const fresh = v.isFresh(symbol);
      const l = latest.get(symbol);
      if (!l) {
        v.settle(symbol); // never traded: its ids start at 1, all of them on the stream
        continue;
      }
      const after = v.handledUpTo(symbol);
      if (l.id < after) {
        // Ids never go back on one feed: it was restarted and numbers anew, so its new trades collide
        // with stored ones. Point the ingest at it as a new stream (or clear the old data) to take them.
        log.warn({ symbol, feedLatest: l.id, handled: after }, "ingest: the feed's trade ids went backwards");
      }
      if (l.id <= after) {
        v.settle(symbol);
        continue;
      }
      cursors.push(
        cursor({
          symbol,
          after,
          upTo: l.id,
          fresh,
          startMs: fresh ? now - this.o.initialLookbackMs : resumeFrom,
        }),
      );
    }
    await this.run(cursors);
    log.info(
      { symbols: cursors.length, received: this.o.stats.counts().received.backfill },
      "ingest: backfill done",
    );
  }

  /** Backfills the holes in the ids that stayed open since the last call. */
  async gaps(): Promise<void> {
    const v = this.o.validator;
    const gaps = v.gaps();
    const now = new Set(gaps.map((g) => `${g.symbol}:${g.after}`));
    // Only holes that stayed open a whole period: an out-of-order trade fills its own within seconds.
    const stale = gaps.filter((g) => this.lastGaps.has(`${g.symbol}:${g.after}`));
    this.lastGaps = now;
    if (!stale.length) return;
    const from = (v.latestEventMs ?? this.o.clock.now()) - this.o.lookbackMs;
    await this.run(
      stale.map((g) =>
        cursor({ symbol: g.symbol, after: g.after, upTo: g.before - 1, fresh: false, startMs: from }),
      ),
    );
  }

  /** Fetches cursors' pages and feeds their trades to the validator in event-time order across symbols. */
  private async run(cursors: Cursor[]): Promise<void> {
    const { rest, writer, router, stats } = this.o;
    const active = cursors.filter((c) => c.upTo > c.after);
    while (active.some((c) => !c.done || c.buffer.length)) {
      if (this.o.stopped()) return;
      const need = active.filter((c) => !c.done && c.buffer.length === 0);
      // A pool of requests, each taking the next symbol as one returns: a slow page holds up one lane,
      // not a whole wave.
      let next = 0;
      const lane = async (): Promise<void> => {
        for (let c = need[next++]; c; c = need[next++]) {
          const page = await rest.trades(c.symbol, {
            startMs: c.startMs,
            pageToken: c.token,
            limit: this.o.pageSize,
          });
          for (const t of page.trades) {
            if (t.i <= c.after) continue;
            if (t.i > c.upTo) {
              c.done = true;
              break;
            }
            c.firstId ??= t.i;
            c.buffer.push(streamTrade(c.symbol, t));
          }
          c.token = page.next_page_token;
          if (!c.token) c.done = true;
        }
      };
      await Promise.all(Array.from({ length: Math.min(BACKFILL_REQUESTS, need.length) }, lane));
      // Everything up to the earliest "newest buffered time" of the unfinished symbols is complete; a
      // symbol whose page held nothing wanted yet holds everything back until its next page is in.
      let frontier = Infinity;
      for (const c of active) {
        if (c.done) continue;
        if (!c.buffer.length) {
          frontier = -Infinity;
          break;
        }
        let max = -Infinity;
        for (const t of c.buffer) max = Math.max(max, Date.parse(t.t as string));
        frontier = Math.min(frontier, max);
      }
      const ready: { t: Record<string, unknown>; ms: number }[] = [];
      for (const c of active) {
        const keep: Record<string, unknown>[] = [];
        for (const t of c.buffer) {
          const ms = Date.parse(t.t as string);
          if (ms <= frontier) ready.push({ t, ms });
          else keep.push(t);
        }
        c.buffer = keep;
      }
      ready.sort((a, b) => a.ms - b.ms);
      const receivedMs = Date.now();
      for (const { t } of ready) {
        stats.received("backfill");
        router.message(t, () => JSON.stringify(t), receivedMs, "backfill");
        const wait = writer.room();
        if (wait) await wait;
      }
    }
    this.settle(cursors);
    writer.touch();
  }

  /** Whatever is still missing up to each target the feed cannot serve: note it and move on. */
  private settle(cursors: Cursor[]): void {
    const v = this.o.validator;
    for (const c of cursors) {
      const before = v.handledUpTo(c.symbol);
      if (before >= c.upTo) {
        v.settle(c.symbol);
        continue;
      }
      let missing = 0;
      for (let id = before + 1; id <= c.upTo; id++) {
        if (v.isHandled(c.symbol, id)) continue;
        // With no checkpoint, ids before the first one served precede our span: nothing was lost.
        if (!(c.fresh && (c.firstId === null || id < c.firstId))) missing++;
      }
      if (missing) {
        this.o.stats.unrecoverable(missing);
        log.warn(
          { symbol: c.symbol, after: before, upTo: c.upTo, missing },
          "ingest: trade ids the feed no longer serves",
        );
      }
      v.skipTo(c.symbol, c.upTo);
    }
  }
}
