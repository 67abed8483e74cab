import type { DataSource } from "typeorm";
import { createDataSource } from "../../src/db/data-source";
import {
  KEY_HEADER,
  SECRET_HEADER,
  parseRfc3339,
  type MockFeed,
  type RestTrade,
  type TradesPage,
} from "../../src/feed";
import { rfc3339Micros } from "../../src/feed/timestamp";
import { createTestDatabase } from "../support/database";

export interface TestDb {
  url: string;
  ds: DataSource;
  close(): Promise<void>;
}

/** A fresh migrated database and a DataSource on it. */
export async function testDb(): Promise<TestDb> {
  const db = await createTestDatabase();
  const ds = createDataSource({ url: db.url, statementTimeoutMs: 30_000, poolSize: 4 });
  await ds.initialize();
  return {
    url: db.url,
    ds,
    async close() {
      await ds.destroy();
      await db.drop();
    },
  };
}

export { sleep, until } from "../support/wait";

/** Every trade of `symbol` the feed's REST history holds, in id order. */
export async function history(restUrl: string, symbol: string): Promise<RestTrade[]> {
  const out: RestTrade[] = [];
  let token: string | null = null;
  do {
    const q = new URLSearchParams({ limit: "10000", start: "1970-01-01T00:00:00Z" });
    if (token) q.set("page_token", token);
    const res = await fetch(`${restUrl}/v2/stocks/${encodeURIComponent(symbol)}/trades?${q}`, {
      headers: { [KEY_HEADER]: "tickgraph", [SECRET_HEADER]: "tickgraph" },
    });
    const page = (await res.json()) as TradesPage;
    out.push(...page.trades);
    token = page.next_page_token;
  } while (token);
  return out;
}

export interface StoredTrade {
  symbol: string;
  seq: number;
  price: number;
  size: number;
  /** RFC 3339 with six fraction digits: `quotes.event_time` keeps microseconds. */
  time: string;
}

/** A feed time as stored: its nanoseconds truncated to microseconds. */
export function storedTime(t: string): string {
  return rfc3339Micros(parseRfc3339(t)!);
}

export async function storedTrades(ds: DataSource): Promise<Map<string, StoredTrade[]>> {
  const rows: StoredTrade[] = await ds.query(
    `SELECT symbol, seq::int AS seq, price, size,
            to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time
     FROM quotes ORDER BY symbol, seq`,
  );
  const out = new Map<string, StoredTrade[]>();
  for (const r of rows) {
    let list = out.get(r.symbol);
    if (!list) out.set(r.symbol, (list = []));
    list.push(r);
  }
  return out;
}

/** Ids of trades quarantined as LATE, per symbol (read back from their verbatim raw text). */
export async function lateIds(ds: DataSource): Promise<Map<string, Set<number>>> {
  const rows: { raw: string }[] = await ds.query(`SELECT raw FROM quarantine WHERE reason = 'LATE'`);
  const out = new Map<string, Set<number>>();
  for (const { raw } of rows) {
    const m = JSON.parse(raw) as { S: string; i: number };
    let set = out.get(m.S);
    if (!set) out.set(m.S, (set = new Set()));
    set.add(m.i);
  }
  return out;
}

/**
 * Checks the database against the feed's history for ids from[symbol] (1 unless given)…upTo[symbol]:
 * every trade is stored exactly once with the feed's price, size and time, or quarantined as LATE;
 * nothing else is stored. Rows past upTo (stored beyond a hole still open) must be the feed's trades
 * too; `beyond` counts them (and `lateBeyond` the LATE ones there).
 */
export async function expectMatchesHistory(
  ds: DataSource,
  feed: Pick<MockFeed, "restUrl">,
  upTo: Record<string, number>,
  from: Record<string, number> = {},
): Promise<{ stored: number; late: number; beyond: number; lateBeyond: number }> {
  const stored = await storedTrades(ds);
  const late = await lateIds(ds);
  let nStored = 0;
  let nLate = 0;
  let nBeyond = 0;
  let nLateBeyond = 0;
  for (const [symbol, last] of Object.entries(upTo)) {
    const first = from[symbol] ?? 1;
    const all = await history(feed.restUrl, symbol);
    const hist = all.filter((t) => t.i >= first && t.i <= last);
    expect(hist.map((t) => t.i)).toEqual(hist.map((_, k) => k + first));
    const lateSet = late.get(symbol) ?? new Set<number>();
    const rows = (stored.get(symbol) ?? []).filter((r) => r.seq >= first && r.seq <= last);
    const expected = hist
      .filter((t) => !lateSet.has(t.i))
      .map((t) => ({ symbol, seq: t.i, price: t.p, size: t.s, time: storedTime(t.t) }));
    expect(rows).toEqual(expected);
    // A trade quarantined as LATE is one the feed made (it may lie past a gap still open at `last`).
    for (const id of lateSet) expect(id).toBeLessThanOrEqual(all.length);
    nStored += rows.length;
    nLate += [...lateSet].filter((id) => id >= first && id <= last).length;
    nLateBeyond += [...lateSet].filter((id) => id > last).length;
    const byId = new Map(all.map((t) => [t.i, t]));
    const beyond = (stored.get(symbol) ?? []).filter((r) => r.seq > last);
    expect(beyond).toEqual(
      beyond.map((r) => {
        const t = byId.get(r.seq);
        return t ? { symbol, seq: t.i, price: t.p, size: t.s, time: storedTime(t.t) } : { missing: r.seq };
      }),
    );
    nBeyond += beyond.length;
  }
  return { stored: nStored, late: nLate, beyond: nBeyond, lateBeyond: nLateBeyond };
}
