import { Client } from "pg";
import { BatchWriter, shardOf, type BatchResult, type InDoubtPart } from "../../src/ingest/batch.writer";
import { CheckpointsRepo } from "../../src/db/checkpoints.repo";
import { Validator, type AcceptedTrade } from "../../src/ingest/validator";
import { setLogLevel } from "../../src/log";
import { testDb, until, type TestDb } from "./ingest.helpers";

let db: TestDb;
beforeAll(async () => {
  setLogLevel("silent");
  db = await testDb();
});
afterAll(() => db.close());

const T0 = Date.parse("2026-01-05T14:30:00.000Z");

function trade(symbol: string, id: number): AcceptedTrade {
  const timeMs = T0 + id * 37;
  return {
    symbol,
    id,
    time: new Date(timeMs).toISOString(),
    timeUs: timeMs * 1000,
    timeMs,
    price: 100 + (id % 7),
    size: 1 + (id % 5),
    exchange: "V",
    bid: 99,
    bidSize: 1,
    ask: 101,
    askSize: 2,
  };
}

test("batches by size, the remainder by time; a full buffer makes the producer wait; repeats never reach panes", async () => {
  const results: BatchResult[] = [];
  let sent = 0;
  const writer = new BatchWriter({
    dataSource: db.ds,
    stream: "test",
    epoch: await new CheckpointsRepo(db.ds).claim("test"),
    batchSize: 100,
    maxDelayMs: 20,
    checkpoint: () => ({ lastIds: { AAPL: sent }, watermarkMs: T0 + sent * 37 - 2000 }),
    onCommitted: (r) => results.push(r),
  });
  let maxBuffered = 0;
  let waits = 0;
  const produce = async () => {
    for (let id = 1; id <= 1050; id++) {
      const wait = writer.room();
      if (wait) {
        waits++;
        await wait;
      }
      writer.addTrade(trade("AAPL", id), Date.now(), "feed");
      sent = id;
      maxBuffered = Math.max(maxBuffered, writer.buffered);
    }
  };
  await produce();
  // The last 50 rows are below the batch size: the delay alone commits them.
  await until("the remainder committed", () =>
    results.reduce((n, r) => n + r.inserted, 0) === 1050 ? true : undefined,
  );
  expect(waits).toBeGreaterThan(0);
  expect(maxBuffered).toBeLessThanOrEqual(100);
  for (const r of results) expect(r.trades).toBeLessThanOrEqual(100);
  expect(results.length).toBeGreaterThanOrEqual(11);
  const [cp] = await db.ds.query(`SELECT last_ids, watermark FROM ingest_checkpoints WHERE stream = 'test'`);
  expect(cp.last_ids).toEqual({ AAPL: 1050 });

  // Re-sending everything: the unique key turns every row away and panes stay as they were.
  const [panesBefore] = await db.ds.query(`SELECT sum(n)::int AS n, sum(pv_sum) AS pv FROM panes_10s`);
  const committed = results.length;
  sent = 0;
  await produce();
  writer.addQuarantine("not json \u0000", "MALFORMED", "frame is not JSON", Date.now());
  await writer.close();
  const repeats = results.slice(committed);
  expect(repeats.reduce((n, r) => n + r.trades, 0)).toBe(1050);
  expect(repeats.reduce((n, r) => n + r.inserted, 0)).toBe(0);
  expect(repeats.flatMap((r) => r.buckets)).toEqual([]);
  const [panesAfter] = await db.ds.query(`SELECT sum(n)::int AS n, sum(pv_sum) AS pv FROM panes_10s`);
  expect(panesAfter).toEqual(panesBefore);
  expect(panesAfter.n).toBe(1050);
  const [q] = await db.ds.query(`SELECT raw, detail FROM quarantine`);
  expect(q).toEqual({
    raw: "not json \\u0000",
    detail: "frame is not JSON (NUL and unpaired surrogates escaped as \\uXXXX)",
  });
});

test("a batch split over several connections commits every part, and the checkpoint holds every symbol", async () => {
  await db.ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
  const symbols = "ABCDEFGHIJ".split("").map((c) => `${c}X`);
  const results: BatchResult[] = [];
  const last: Record<string, number> = {};
  const writer = new BatchWriter({
    dataSource: db.ds,
    stream: "parts",
    epoch: await new CheckpointsRepo(db.ds).claim("parts"),
    batchSize: 70,
    connections: 3,
    checkpoint: () => ({ lastIds: { ...last }, watermarkMs: T0 }),
    onCommitted: (r) => results.push(r),
  });
  for (let id = 1; id <= 40; id++) {
    for (const s of symbols) {
      const wait = writer.room();
      if (wait) await wait;
      writer.addTrade(trade(s, id), Date.now(), "feed");
      last[s] = id;
    }
  }
  await writer.close();
  expect(results.reduce((n, r) => n + r.inserted, 0)).toBe(400);
  const [cp] = await db.ds.query(`SELECT last_ids FROM ingest_checkpoints WHERE stream = 'parts'`);
  expect(cp.last_ids).toEqual(Object.fromEntries(symbols.map((s) => [s, 40])));
  const [{ n, panes }] = await db.ds.query(
    `SELECT (SELECT count(*)::int FROM quotes) AS n, (SELECT sum(n)::int FROM panes_10s) AS panes`,
  );
  expect({ n, panes }).toEqual({ n: 400, panes: 400 });
});

test("each commit hands over its new rows with their stored ids, and leaves rows the unique key refused out", async () => {
  await db.ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
  const results: BatchResult[] = [];
  const writer = new BatchWriter({
    dataSource: db.ds,
    stream: "rows",
    epoch: await new CheckpointsRepo(db.ds).claim("rows"),
    batchSize: 1000,
    connections: 2,
    checkpoint: () => ({ lastIds: {}, watermarkMs: T0 }),
    onCommitted: (r) => results.push(r),
  });
  for (let id = 1; id <= 5; id++) writer.addTrade(trade("AX", id), Date.now(), "feed");
  await writer.flush();
  // A batch mixing repeats (ids 4, 5) with new rows of two symbols.
  for (let id = 4; id <= 8; id++) writer.addTrade(trade("AX", id), Date.now(), "backfill");
  for (let id = 1; id <= 3; id++) writer.addTrade(trade("BX", id), Date.now(), "feed");
  await writer.close();

  const rows = (r: BatchResult) =>
    r.committed.flatMap((c) =>
      c.id.map((id, k) => ({
        id,
        symbol: c.symbol[k],
        seq: String(c.seq[k]),
        price: c.price[k],
        source: c.source[k],
      })),
    );
  expect(rows(results[0]).map((r) => r.seq)).toEqual(["1", "2", "3", "4", "5"]);
  const second = rows(results[1]);
  expect(second.map((r) => `${r.symbol}:${r.seq}`).sort()).toEqual([
    "AX:6",
    "AX:7",
    "AX:8",
    "BX:1",
    "BX:2",
    "BX:3",
  ]);
  const stored: { id: string; symbol: string; seq: string; price: number; source: string }[] =
    await db.ds.query(`SELECT id::text, symbol, seq::text, price, source FROM quotes`);
  const byId = new Map(stored.map((s) => [s.id, s]));
  for (const r of [...rows(results[0]), ...second]) expect(byId.get(r.id)).toEqual(r);
});

test("a streamed batch that meets stored trades is written again row by row: new rows once, repeats never", async () => {
  await db.ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
  const results: BatchResult[] = [];
  const writer = new BatchWriter({
    dataSource: db.ds,
    stream: "mixed",
    epoch: await new CheckpointsRepo(db.ds).claim("mixed"),
    batchSize: 1000,
    connections: 1,
    checkpoint: () => ({ lastIds: {}, watermarkMs: T0 }),
    onCommitted: (r) => results.push(r),
  });
  for (let id = 1; id <= 5; id++) writer.addTrade(trade("MX", id), Date.now(), "feed");
  await writer.flush();
  // Not marked as a backfill, so it goes by COPY first, which the unique key refuses as a whole.
  for (let id = 8; id >= 4; id--) writer.addTrade(trade("MX", id), Date.now(), "feed");
  await writer.close();
  expect(results.map((r) => [r.trades, r.inserted])).toEqual([
    [5, 5],
    [5, 3],
  ]);
  const [pane] = await db.ds.query(
    `SELECT sum(n)::int AS n, sum(volume)::int AS volume, min(open_seq)::int AS open, max(close_seq)::int AS close
     FROM panes_10s WHERE symbol = 'MX'`,
  );
  const sizes = [1, 2, 3, 4, 5, 6, 7, 8].map((id) => trade("MX", id).size);
  expect(pane).toEqual({ n: 8, volume: sizes.reduce((a, b) => a + b), open: 1, close: 8 });
});

test("while nobody wants the new rows, commits count them but hand none over", async () => {
  await db.ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
  const results: BatchResult[] = [];
  let want = false;
  const writer = new BatchWriter({
    dataSource: db.ds,
    stream: "lean",
    epoch: await new CheckpointsRepo(db.ds).claim("lean"),
    batchSize: 1000,
    connections: 1,
    checkpoint: () => ({ lastIds: {}, watermarkMs: T0 }),
    onCommitted: (r) => results.push(r),
    wantTrades: () => want,
  });
  for (let id = 1; id <= 5; id++) writer.addTrade(trade("LX", id), Date.now(), "feed");
  await writer.flush();
  want = true;
  for (let id = 6; id <= 7; id++) writer.addTrade(trade("LX", id), Date.now(), "feed");
  await writer.close();
  expect(results.map((r) => r.inserted)).toEqual([5, 2]);
  expect(results[0].committed).toEqual([]);
  expect(results[1].committed.flatMap((c) => c.seq.map(String))).toEqual(["6", "7"]);
  const [{ n }] = await db.ds.query(`SELECT count(*)::int AS n FROM quotes WHERE symbol = 'LX'`);
  expect(n).toBe(7);
});

test("a crash between the parts of a batch loses no trade: the stored watermark never runs ahead of a lost part, and every row is accounted for", async () => {
  await db.ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
  // One symbol per connection, and a database that refuses B's third trade: its part never commits.
  const names = ["AX", "BX", "CX", "DX", "EX", "FX"];
  const a = names.find((s) => shardOf(s, 2) === 0)!;
  const b = names.find((s) => shardOf(s, 2) === 1)!;
  await db.ds.query(`
    CREATE FUNCTION refuse_b() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.symbol = '${b}' AND NEW.seq >= 3 THEN RAISE EXCEPTION 'refused for the test'; END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER refuse_b BEFORE INSERT ON quotes FOR EACH ROW EXECUTE FUNCTION refuse_b();`);
  try {
    const at = (ms: number) => new Date(T0 + ms).toISOString();
    const msg = (symbol: string, id: number, ms: number) => ({
      T: "t",
      S: symbol,
      i: id,
      x: "V",
      p: 100,
      s: 10,
      t: at(ms),
      c: ["@"],
      z: "C",
    });
    const validator = new Validator({ symbols: [a, b], clock: () => T0 + 3_600_000 });
    const writer = new BatchWriter({
      dataSource: db.ds,
      stream: "crash",
      epoch: await new CheckpointsRepo(db.ds).claim("crash"),
      batchSize: 1000,
      maxDelayMs: 10_000,
      connections: 2,
      checkpoint: () => ({ lastIds: validator.takeCheckpoint(), watermarkMs: validator.watermarkMs }),
      onCommitted: (r) => committed.push(r),
      onDropped: (n) => (dropped += n),
    });
    const committed: BatchResult[] = [];
    let dropped = 0;
    const add = (m: ReturnType<typeof msg>) => {
      const v = validator.check(m);
      if (v.kind !== "trade") throw new Error(`not accepted: ${JSON.stringify(v)}`);
      writer.addTrade(v.trade, Date.now(), "feed");
    };
    add(msg(a, 1, 0));
    add(msg(b, 1, 0));
    add(msg(b, 2, 1000));
    await writer.flush(); // committed whole: watermark 1000 − 2000
    // One batch: B's trade at 2 s, then A's at 100 s, which moves the watermark to 98 s.
    add(msg(b, 3, 2000));
    add(msg(a, 2, 100_000));
    void writer.flush();
    await until("A's part committed", async () =>
      (await db.ds.query(`SELECT 1 FROM quotes WHERE symbol = $1 AND seq = 2`, [a])).length
        ? true
        : undefined,
    );
    await writer.abandon(); // the crash: B's part is lost

    // A's part is reported as committed (not whole: no watermark), B's row as dropped; a row routed to
    // the abandoned writer is dropped too.
    expect(committed.map((r) => [r.inserted, r.watermarkMs === null, r.lastIds])).toEqual([
      [3, false, { [a]: 1, [b]: 2 }],
      [1, true, { [a]: 2 }],
    ]);
    expect(dropped).toBe(1);
    add(msg(a, 3, 100_500));
    expect(dropped).toBe(2);

    const [cp] = await db.ds.query(
      `SELECT last_ids, watermark FROM ingest_checkpoints WHERE stream = 'crash'`,
    );
    expect(cp.last_ids).toEqual({ [a]: 2, [b]: 2 });
    // Restart: B's lost trade comes again (backfill) and is stored, not quarantined as LATE.
    const restarted = new Validator({ symbols: [a, b], clock: () => T0 + 3_600_000 });
    restarted.restore(cp.last_ids, cp.watermark?.getTime() ?? null);
    expect(restarted.check(msg(b, 3, 2000)).kind).toBe("trade");
    expect(restarted.check(msg(a, 2, 100_000)).kind).toBe("duplicate");
  } finally {
    await db.ds.query(`DROP TRIGGER refuse_b ON quotes; DROP FUNCTION refuse_b()`);
  }
});

test("after a clean close the checkpoint holds the last batch's own watermark", async () => {
  await db.ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
  let sent = 0;
  const writer = new BatchWriter({
    dataSource: db.ds,
    stream: "close",
    epoch: await new CheckpointsRepo(db.ds).claim("close"),
    batchSize: 50,
    connections: 2,
    checkpoint: () => ({ lastIds: { AX: sent, BX: sent }, watermarkMs: T0 + sent * 37 - 2000 }),
    onCommitted: () => {},
  });
  for (let id = 1; id <= 200; id++) {
    const wait = writer.room();
    if (wait) await wait;
    writer.addTrade(trade("AX", id), Date.now(), "feed");
    writer.addTrade(trade("BX", id), Date.now(), "feed");
    sent = id;
  }
  await writer.close();
  const [cp] = await db.ds.query(`SELECT watermark FROM ingest_checkpoints WHERE stream = 'close'`);
  expect(cp.watermark.getTime()).toBe(T0 + 200 * 37 - 2000);
});

test("panes take open and close by the stored microseconds, on the COPY path as in the SQL merge", async () => {
  await db.ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
  // Two trades in one millisecond, the later id at the earlier microsecond (a late print): ordering by
  // millisecond and id would open with id 1; by the stored time, id 2 opens and id 1 closes.
  const at = (id: number, us: number, price: number): AcceptedTrade => ({
    ...trade("AAPL", id),
    time: new Date(T0).toISOString().replace("Z", `${String(us).padStart(3, "0")}Z`),
    timeUs: T0 * 1000 + us,
    timeMs: T0,
    price,
  });
  const paneOf = async () =>
    (await db.ds.query(`SELECT n, open_px, open_seq::int AS open_seq, close_px, close_seq::int AS close_seq
                        FROM panes_10s`)) as unknown[];
  for (const source of ["feed", "backfill"] as const) {
    await db.ds.query(`TRUNCATE quotes, panes_10s`);
    const writer = new BatchWriter({
      dataSource: db.ds,
      stream: source,
      epoch: await new CheckpointsRepo(db.ds).claim(source),
      checkpoint: () => ({ lastIds: {}, watermarkMs: null }),
      onCommitted: () => undefined,
    });
    // "feed" goes in by COPY with panes summed here; "backfill" by INSERT with panes merged in SQL.
    writer.addTrade(at(1, 700, 10), Date.now(), source);
    writer.addTrade(at(2, 300, 20), Date.now(), source);
    await writer.close();
    expect(await paneOf()).toEqual([{ n: 2, open_px: 20, open_seq: 2, close_px: 10, close_seq: 1 }]);
  }
});

test("a writer whose stream another writer claimed commits nothing more, not even repeats the unique key would drop", async () => {
  await db.ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
  const writer = (epoch: string, lastIds: () => Record<string, number>, onTaken?: () => void) => {
    const results: BatchResult[] = [];
    const w = new BatchWriter({
      dataSource: db.ds,
      stream: "fenced",
      epoch,
      batchSize: 1000,
      connections: 2,
      checkpoint: () => ({ lastIds: lastIds(), watermarkMs: T0 }),
      onCommitted: (r) => results.push(r),
      onTaken,
    });
    return { w, results };
  };
  let taken = 0;
  const old = writer(
    await new CheckpointsRepo(db.ds).claim("fenced"),
    () => ({ AX: 10, BX: 10 }),
    () => taken++,
  );
  for (let id = 1; id <= 10; id++)
    for (const s of ["AX", "BX"]) old.w.addTrade(trade(s, id), Date.now(), "feed");
  await old.w.flush();
  expect(old.results.map((r) => r.inserted)).toEqual([20]);

  const next = writer(await new CheckpointsRepo(db.ds).claim("fenced"), () => ({ AX: 30, BX: 30 }));
  for (let id = 11; id <= 30; id++)
    for (const s of ["AX", "BX"]) next.w.addTrade(trade(s, id), Date.now(), "feed");
  await next.w.close();

  // The old writer sends what the new one already stored (dropped by the unique key) and a trade of its own.
  for (let id = 11; id <= 20; id++) old.w.addTrade(trade("AX", id), Date.now(), "feed");
  old.w.addTrade(trade("BX", 31), Date.now(), "feed");
  old.w.addQuarantine("{", "MALFORMED", "frame is not JSON", Date.now(), "AX");
  await old.w.flush();
  expect(taken).toBe(1);
  expect(old.results).toHaveLength(1);
  // Refused from then on, without waiting or throwing.
  old.w.addTrade(trade("BX", 32), Date.now(), "feed");
  expect(old.w.room()).toBeUndefined();
  await old.w.close();

  const [cp] = await db.ds.query(`SELECT last_ids FROM ingest_checkpoints WHERE stream = 'fenced'`);
  expect(cp.last_ids).toEqual({ AX: 30, BX: 30 });
  const [{ n, bx, q }] = await db.ds.query(
    `SELECT count(*)::int AS n, max(seq) FILTER (WHERE symbol = 'BX')::int AS bx,
            (SELECT count(*)::int FROM quarantine) AS q FROM quotes`,
  );
  expect({ n, bx, q }).toEqual({ n: 60, bx: 30, q: 0 });
});

test("a COMMIT that loses its answer is settled from the checkpoint row: a batch applied counts once, one not applied is written again, one given up in doubt is handed over", async () => {
  await db.ds.query(`TRUNCATE quotes, panes_10s, quarantine, ingest_checkpoints`);
  // The connection breaks around COMMIT: after it was applied ("after") or before it reached Postgres
  // ("before"); while `down`, every statement fails as if Postgres were away.
  let lose: "after" | "before" | null = null;
  let broke = 0;
  let down = false;
  /** The next broken COMMIT takes Postgres away with it. */
  let goDown = false;
  const proto = Client.prototype as unknown as { query: (...args: unknown[]) => Promise<unknown> };
  const real = proto.query;
  const lost = () => {
    broke++;
    if (goDown) down = true;
    throw new Error("Connection terminated unexpectedly");
  };
  proto.query = function (this: Client, ...args: unknown[]) {
    if (down) return Promise.reject(new Error("connect ECONNREFUSED"));
    if (args[0] === "COMMIT" && lose) {
      const how = lose;
      lose = null;
      return real.call(this, how === "after" ? "COMMIT" : "ROLLBACK").then(lost);
    }
    return real.apply(this, args);
  };
  try {
    const results: BatchResult[] = [];
    const inDoubt: InDoubtPart[] = [];
    let dropped = 0;
    let sent = 0;
    const writer = new BatchWriter({
      dataSource: db.ds,
      stream: "doubt",
      epoch: await new CheckpointsRepo(db.ds).claim("doubt"),
      connections: 1,
      maxDelayMs: 10_000,
      checkpoint: () => ({ lastIds: { AAPL: sent }, watermarkMs: null }),
      onCommitted: (r) => results.push(r),
      onDropped: (n) => (dropped += n),
      onInDoubt: (p) => inDoubt.push(p),
    });
    const add = (from: number, to: number) => {
      for (let id = from; id <= to; id++) writer.addTrade(trade("AAPL", id), Date.now(), "feed");
      sent = to;
    };
    const stored = async () => (await db.ds.query(`SELECT count(*)::int AS n FROM quotes`))[0].n as number;

    lose = "after";
    add(1, 5);
    await writer.flush();
    lose = "before";
    add(6, 8);
    await writer.flush();
    expect(broke).toBe(2);
    // Applied: counted once as new rows, not as repeats; not applied: written again.
    expect(results.map((r) => [r.trades, r.inserted])).toEqual([
      [5, 5],
      [3, 3],
    ]);
    expect(await stored()).toBe(8);

    // Given up while in doubt (the writer abandoned while Postgres is away): handed over, not dropped,
    // and the checkpoint row tells whether it is stored.
    lose = "after";
    goDown = true;
    add(9, 10);
    void writer.flush();
    await until("COMMIT answered with a broken connection", () => (broke === 3 ? true : undefined));
    await writer.abandon();
    down = false;
    expect(dropped).toBe(0);
    expect(inDoubt.map((p) => [p.rows, p.result.inserted, p.result.lastIds])).toEqual([[2, 2, { AAPL: 10 }]]);
    expect(await new CheckpointsRepo(db.ds).applied("doubt", inDoubt[0].tx)).toBe(true);
    expect(await stored()).toBe(10);
    // A token of another transaction of the part is not taken for this one.
    expect(await new CheckpointsRepo(db.ds).applied("doubt", { ...inDoubt[0].tx, token: "0:1" })).toBe(false);
  } finally {
    proto.query = real;
  }
});
