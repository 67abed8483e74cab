import { Timestamp } from "../../src/feed/timestamp";
import { splitJsonArray } from "../../src/ingest/raw.frame";
import { Validator, type Verdict } from "../../src/ingest/validator";

const T0 = Date.parse("2026-01-05T14:30:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();

function trade(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { T: "t", S: "AAPL", i: 1, x: "V", p: 100.5, s: 100, t: iso(T0), c: ["@"], z: "C", ...over };
}

function quote(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    T: "q",
    S: "AAPL",
    bx: "V",
    bp: 100.4,
    bs: 3,
    ax: "V",
    ap: 100.6,
    as: 2,
    t: iso(T0),
    c: ["R"],
    z: "C",
    ...over,
  };
}

function validator(now = T0): Validator {
  return new Validator({ symbols: ["AAPL", "MSFT"], clock: () => now, maxSkewMs: 60_000 });
}

const reason = (v: Verdict) => (v.kind === "reject" ? v.reason : v.kind);

test("each kind of bad input gets its reason", () => {
  const v = validator();
  expect(reason(v.check("x"))).toBe("MALFORMED");
  expect(reason(v.check({ T: "z" }))).toBe("MALFORMED");
  expect(reason(v.check(trade({ S: undefined })))).toBe("MALFORMED");
  expect(reason(v.check(trade({ i: 0 })))).toBe("MALFORMED");
  expect(reason(v.check(trade({ s: "100" })))).toBe("MALFORMED");
  expect(reason(v.check(trade({ t: "yesterday" })))).toBe("MALFORMED");
  expect(reason(v.check(trade({ p: -1 })))).toBe("INVALID_PRICE");
  expect(reason(v.check(trade({ p: 0 })))).toBe("INVALID_PRICE");
  expect(reason(v.check(trade({ p: Infinity })))).toBe("INVALID_PRICE");
  expect(reason(v.check(trade({ s: 1.5 })))).toBe("INVALID_SIZE");
  expect(reason(v.check(trade({ s: -3 })))).toBe("INVALID_SIZE");
  expect(reason(v.check(trade({ S: "AAPL7" })))).toBe("UNKNOWN_SYMBOL");
  expect(reason(v.check(trade({ t: iso(T0 + 61_000) })))).toBe("CLOCK_SKEW");
  expect(reason(v.check(quote({ bp: 101, ap: 100 })))).toBe("CROSSED_QUOTE");
  expect(reason(v.check(quote({ bs: 2.5 })))).toBe("INVALID_SIZE");
  expect(reason(v.check(quote({ ap: 0 })))).toBe("INVALID_PRICE");
  expect(reason(v.check(quote({ S: "ZZZZ" })))).toBe("UNKNOWN_SYMBOL");
  // A size of zero is a valid (if odd) print; rejected input never uses up its id.
  expect(reason(v.check(trade({ s: 0 })))).toBe("trade");
  // Alpaca's other message types are well formed, just not applied.
  expect(v.check({ T: "c", S: "AAPL", oi: 1, ci: 2 })).toEqual({
    kind: "reject",
    reason: "UNSUPPORTED",
    detail: 'a trade correction (T="c"): tickgraph does not apply it',
  });
  expect(reason(v.check({ T: "x", S: "AAPL", i: 1 }))).toBe("UNSUPPORTED");
  expect(reason(v.check({ T: "b", S: "AAPL" }))).toBe("UNSUPPORTED");
});

test("event times: RFC 3339 with up to nine fraction digits, or a msgpack Timestamp; stored truncated to microseconds", () => {
  const v = validator();
  const accepted = (t: unknown, i: number) => {
    const r = v.check(trade({ t, i }));
    if (r.kind !== "trade") throw new Error(`not accepted: ${JSON.stringify(r)}`);
    return r.trade;
  };
  // Truncated, never rounded: rounding could carry .9999996 into the next second, or the next pane.
  expect(accepted("2026-01-05T14:29:59.9999996Z", 1)).toMatchObject({
    time: "2026-01-05T14:29:59.999999Z",
    timeUs: Date.parse("2026-01-05T14:29:59.999Z") * 1000 + 999,
    timeMs: Date.parse("2026-01-05T14:29:59.999Z"),
  });
  expect(accepted("2026-01-05T14:30:00Z", 2).time).toBe("2026-01-05T14:30:00.000000Z");
  expect(accepted("2026-01-05T15:30:00.5+01:00", 3).time).toBe("2026-01-05T14:30:00.500000Z");
  expect(accepted(new Timestamp(T0 + 7, 123_456), 4)).toMatchObject({
    time: "2026-01-05T14:30:00.007123Z",
    timeUs: (T0 + 7) * 1000 + 123,
  });
  for (const bad of ["2026-01-05T14:30:00.1234567890Z", "2026-01-05T14:30:00", "2026-01-05", 1767623400000])
    expect(reason(v.check(trade({ t: bad, i: 9 })))).toBe("MALFORMED");
});

test("duplicates are recognised by id, also out of order; quotes set the bid/ask trades carry", () => {
  const v = validator();
  expect(reason(v.check(quote()))).toBe("quote");
  const first = v.check(trade({ i: 1 }));
  expect(first).toMatchObject({ kind: "trade", trade: { bid: 100.4, bidSize: 3, ask: 100.6, askSize: 2 } });
  expect(reason(v.check(trade({ i: 1 })))).toBe("duplicate");
  expect(reason(v.check(trade({ i: 3 })))).toBe("trade");
  expect(v.gaps()).toEqual([{ symbol: "AAPL", after: 1, before: 3 }]);
  expect(reason(v.check(trade({ i: 2 })))).toBe("trade");
  expect(reason(v.check(trade({ i: 3 })))).toBe("duplicate");
  expect(v.handledUpTo("AAPL")).toBe(3);
  expect(v.gaps()).toEqual([]);
  expect(v.takeCheckpoint()).toEqual({ AAPL: 3 });
  expect(v.takeCheckpoint()).toEqual({});
});

test("LATE iff the watermark has passed the trade's pane end + 30 s", () => {
  const v = validator(T0 + 10 * 60_000);
  // Highest accepted event time 14:31:00.000 → watermark 14:30:58.000.
  expect(reason(v.check(trade({ i: 1, t: "2026-01-05T14:31:00.000Z" })))).toBe("trade");
  expect(v.watermarkMs).toBe(Date.parse("2026-01-05T14:30:58.000Z"));
  // Pane [14:30:10, 14:30:20): end + 30 s = 14:30:50 ≤ watermark → LATE.
  expect(reason(v.check(trade({ i: 2, t: "2026-01-05T14:30:19.999Z" })))).toBe("LATE");
  // Pane [14:30:20, 14:30:30): end + 30 s = 14:31:00 > watermark → stored, it revises its windows.
  expect(reason(v.check(trade({ i: 3, t: "2026-01-05T14:30:20.000Z" })))).toBe("trade");
  // Exactly at the bound: watermark 14:31:00 after a trade at 14:31:02 makes pane [14:30:20, …) final.
  expect(reason(v.check(trade({ i: 4, t: "2026-01-05T14:31:02.000Z" })))).toBe("trade");
  expect(reason(v.check(trade({ i: 5, t: "2026-01-05T14:30:20.000Z" })))).toBe("LATE");
  expect(reason(v.check(trade({ i: 6, t: "2026-01-05T14:30:30.000Z" })))).toBe("trade");
  // A LATE trade is handled for good: its re-send is a duplicate, and it leaves no gap.
  expect(reason(v.check(trade({ i: 2, t: "2026-01-05T14:30:19.999Z" })))).toBe("duplicate");
  expect(v.handledUpTo("AAPL")).toBe(6);
  // Late trades never move the watermark back or forward.
  expect(v.watermarkMs).toBe(Date.parse("2026-01-05T14:31:00.000Z"));
});

test("a restored checkpoint resumes ids and the watermark", () => {
  const v = validator(T0 + 3600_000);
  v.restore({ AAPL: 41, NOPE: 3 }, Date.parse("2026-01-05T14:40:00.000Z"));
  expect(reason(v.check(trade({ i: 41, t: "2026-01-05T14:40:01.000Z" })))).toBe("duplicate");
  expect(reason(v.check(trade({ i: 42, t: "2026-01-05T14:39:00.000Z" })))).toBe("LATE");
  expect(reason(v.check(trade({ i: 43, t: "2026-01-05T14:39:40.000Z" })))).toBe("trade");
  expect(v.isFresh("AAPL")).toBe(false);
  expect(v.isFresh("MSFT")).toBe(true);
});

test("splitJsonArray returns each element's text exactly as written", () => {
  const text = ' [ {"T":"t","p":1.50,"S":"A\\"]B"} ,[1,[2]], "x,y" ,3e2,{"a":{"b":"}"}}]';
  expect(splitJsonArray(text)).toEqual([
    '{"T":"t","p":1.50,"S":"A\\"]B"}',
    "[1,[2]]",
    '"x,y"',
    "3e2",
    '{"a":{"b":"}"}}',
  ]);
  expect(splitJsonArray("[]")).toEqual([]);
  expect(splitJsonArray('{"a":1}')).toBeNull();
});
