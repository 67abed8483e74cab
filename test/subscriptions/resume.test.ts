import { Client } from "pg";
import type { Client as WsClient } from "graphql-ws";
import { grantEntitlements } from "../support/governance";
import { startTestPlatform, type TestPlatform } from "../support/server";
import { record, type Recording } from "../support/subscriptions";
import { until } from "../support/wait";

// quoteTicks and windowAggregates resume after a cursor: a client whose connection drops mid-stream
// while the market keeps trading comes back with the last cursor it received and gets what was stored
// meanwhile, then the live events, with nothing skipped and nothing twice. Checked row by row against
// Postgres.
let t: TestPlatform;
let db: Client;
let token: string;
let symbols: string[];

beforeAll(async () => {
  t = await startTestPlatform(
    { INGEST: "on" },
    { feed: { seed: 11, symbols: 6, rate: 3000, speed: 60, start: "2026-01-05T14:29:00Z" } },
  );
  await grantEntitlements(t, "rita");
  token = await t.token("rita");
  db = new Client({ connectionString: t.databaseUrl });
  await db.connect();
  symbols = await until("instruments", async () => {
    const { rows } = await db.query(`SELECT symbol FROM instruments ORDER BY symbol LIMIT 2`);
    return rows.length === 2 ? rows.map((r) => r.symbol as string) : undefined;
  });
}, 60_000);
afterAll(async () => {
  await db?.end();
  await t?.close();
});

const connect = (): WsClient => t.ws({ connectionParams: { authorization: `Bearer ${token}` } });

type Tick = { id: string; symbol: string; seq: string; price: number; cursor: string };
const TICKS = `subscription($s: [String!]!, $after: String) {
  quoteTicks(symbols: $s, after: $after) { id symbol seq price cursor } }`;

/** The max of a column over what is stored, as text. */
const maxOf = async (sql: string, params: unknown[] = []): Promise<string> =>
  (await db.query(sql, params)).rows[0].m as string;

test("quoteTicks resumed after its last cursor sends every trade stored since, then live ones, each once", async () => {
  const first = connect();
  const before = record<{ quoteTicks: Tick }>(first, TICKS, { s: symbols });
  await until("ticks before the drop", () => before.events.length >= 300);
  // The connection drops (no complete, no close handshake) while the market goes on.
  first.terminate();
  const got = before.events.map((e) => e.data.quoteTicks);
  const last = got.at(-1)!;
  const storedAtDrop = await maxOf(`SELECT max(id)::text AS m FROM quotes WHERE symbol = ANY($1)`, [symbols]);
  await until("trades stored while away", async () => {
    const now = await maxOf(`SELECT count(*)::text AS m FROM quotes WHERE symbol = ANY($1) AND id > $2`, [
      symbols,
      storedAtDrop,
    ]);
    return Number(now) >= 500 ? true : undefined;
  });

  // Back with the last cursor received: the replay, then live trades stored after the resume.
  const resumedAt = await maxOf(`SELECT max(id)::text AS m FROM quotes WHERE symbol = ANY($1)`, [symbols]);
  const after = record<{ quoteTicks: Tick }>(connect(), TICKS, { s: symbols, after: last.cursor });
  await until(
    "live ticks after the replay",
    () => after.events.some((e) => BigInt(e.data.quoteTicks.id) > BigInt(resumedAt) + 200n),
    30_000,
  );
  after.stop();
  const again = after.events.map((e) => e.data.quoteTicks);
  const received = [...got, ...again];
  const top = received.at(-1)!.id;
  const { rows } = await db.query(
    `SELECT id::text, symbol, seq::text, price FROM quotes
     WHERE symbol = ANY($1) AND id >= $2 AND id <= $3 ORDER BY quotes.id`,
    [symbols, got[0].id, top],
  );
  expect(rows.length).toBeGreaterThan(got.length + 500);
  expect(received.map(({ cursor: _c, ...q }) => q)).toEqual(rows);
}, 90_000);

type Window = {
  symbol: string;
  windowEnd: string;
  revision: number;
  mean: number;
  tickCount: number;
  cursor: string;
};
const WINDOWS = `subscription($after: String) {
  windowAggregates(size: ONE_MINUTE, after: $after) { symbol windowEnd revision mean tickCount cursor } }`;

/** The stored windows of ONE_MINUTE written after `from` up to `to` (cursors of this stream), in order. */
async function storedBetween(from: Window, to: Window): Promise<Omit<Window, "cursor">[]> {
  const key = (w: Window) => Buffer.from(w.cursor, "base64url").toString().split(":").slice(1);
  const [fu, fe, fs] = key(from);
  const [tu, te, ts] = key(to);
  const { rows } = await db.query(
    `SELECT symbol, window_end AS "windowEnd", revision, mean, tick_count AS "tickCount" FROM window_aggregates
     WHERE size = 'ONE_MINUTE'
       AND (updated_at, window_end, symbol) > (to_timestamp(0) + $1::int8 * interval '1 microsecond', to_timestamp($2::int8 / 1000.0), $3)
       AND (updated_at, window_end, symbol) <= (to_timestamp(0) + $4::int8 * interval '1 microsecond', to_timestamp($5::int8 / 1000.0), $6)
     ORDER BY updated_at, window_end, symbol`,
    [fu, fe, fs, tu, te, ts],
  );
  return rows.map((r) => ({ ...r, windowEnd: r.windowEnd.toISOString() }));
}

test("windowAggregates resumed after its last cursor sends every row written since, then live ones, each once", async () => {
  const first = connect();
  const before: Recording<{ windowAggregates: Window }> = record(first, WINDOWS);
  const endsBefore = () => new Set(before.events.map((e) => e.data.windowAggregates.windowEnd)).size;
  await until("windows before the drop", () => endsBefore() >= 4, 30_000);
  first.terminate();
  const got = before.events.map((e) => e.data.windowAggregates);
  const last = got.at(-1)!;
  await until(
    "windows written while away",
    async () =>
      Number(
        await maxOf(
          `SELECT count(DISTINCT window_end)::text AS m FROM window_aggregates WHERE size = 'ONE_MINUTE' AND window_end > $1`,
          [last.windowEnd],
        ),
      ) >= 4
        ? true
        : undefined,
    30_000,
  );
  const resumedAt = await maxOf(
    `SELECT max(window_end)::text AS m FROM window_aggregates WHERE size = 'ONE_MINUTE'`,
  );
  const after = record<{ windowAggregates: Window }>(connect(), WINDOWS, { after: last.cursor });
  await until(
    "live windows after the replay",
    () =>
      after.events.some(
        (e) => Date.parse(e.data.windowAggregates.windowEnd) > Date.parse(resumedAt) + 20_000,
      ),
    30_000,
  );
  after.stop();
  const again = after.events.map((e) => e.data.windowAggregates);
  // Every row written after the first received one up to the last, in the order written: what the two
  // connections received together (a row revised since it was sent is stored at a later position).
  const received = [...got.slice(1), ...again];
  const stored = await storedBetween(got[0], received.at(-1)!);
  const strip = ({ cursor: _c, ...w }: Window) => w;
  const revisedSince = received.filter(
    (w) =>
      !stored.some((s) => s.symbol === w.symbol && s.windowEnd === w.windowEnd && s.revision === w.revision),
  );
  expect(revisedSince.length).toBeLessThan(received.length / 10);
  expect(received.filter((w) => !revisedSince.includes(w)).map(strip)).toEqual(stored);
  expect(new Set(received.map((w) => w.cursor)).size).toBe(received.length);
  expect(stored.length).toBeGreaterThan(got.length);
}, 90_000);
