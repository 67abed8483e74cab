import { decode, ExtensionCodec, EXT_TIMESTAMP, decodeTimestampToTimeSpec, encode } from "@msgpack/msgpack";
import { pack, packedArray, unpack } from "../../src/feed/msgpack";
import { Timestamp, parseRfc3339, rfc3339Micros, rfc3339Nano } from "../../src/feed/timestamp";

const T = Date.parse("2026-01-05T14:30:00Z");

test("RFC 3339 with up to nine fraction digits parses exactly, within a second and across seconds", () => {
  const cases: [string, number, number][] = [
    ["2026-01-05T14:30:00Z", T, 0],
    ["2026-01-05T14:30:00.1Z", T + 100, 0],
    ["2026-01-05T14:30:00.838232225Z", T + 838, 232_225],
    ["2026-01-05T14:30:00.83915973Z", T + 839, 159_730],
    ["2026-01-05T14:30:00.000000001Z", T, 1],
    ["2026-01-05T14:30:01.5Z", T + 1500, 0],
    ["2026-01-05T14:30:00.999999999Z", T + 999, 999_999],
    ["2026-01-05T15:30:00.25+01:00", T + 250, 0],
  ];
  // Twice: the second round goes through the same-second shortcut.
  for (let round = 0; round < 2; round++)
    for (const [text, ms, nanos] of cases)
      expect([text, parseRfc3339(text)]).toEqual([text, new Timestamp(ms, nanos)]);
  for (const bad of [
    "2026-01-05T14:30:00.Z",
    "2026-01-05T14:30:00.1234567890Z",
    "2026-01-05T14:30:00.12a4Z",
    "2026-01-05T14:30:00",
    "2026-01-05T14:30:00.5",
    "2026-02-30T14:30:00Z",
    "2026-01-05 14:30:00Z",
    "",
  ]) {
    parseRfc3339("2026-01-05T14:30:00Z"); // primes the shortcut with the same second
    expect([bad, parseRfc3339(bad)]).toEqual([bad, undefined]);
  }
});

test("written as Alpaca writes them: trailing zeros dropped; microseconds truncated for Postgres", () => {
  expect(rfc3339Nano(T)).toBe("2026-01-05T14:30:00Z");
  expect(rfc3339Nano(T + 120, 0)).toBe("2026-01-05T14:30:00.12Z");
  expect(rfc3339Nano(T + 838, 232_225)).toBe("2026-01-05T14:30:00.838232225Z");
  expect(rfc3339Nano(T, 1)).toBe("2026-01-05T14:30:00.000000001Z");
  expect(rfc3339Micros(new Timestamp(T + 999, 999_999))).toBe("2026-01-05T14:30:00.999999Z");
  expect(rfc3339Micros(new Timestamp(T + 1000, 0))).toBe("2026-01-05T14:30:01.000000Z");
  expect(rfc3339Micros(new Timestamp(T + 7, 123_456))).toBe("2026-01-05T14:30:00.007123Z");
  expect(new Timestamp(T + 7, 123_456).micros).toBe((T + 7) * 1000 + 123);
});

test("msgpack timestamps in all three sizes, read by another msgpack library the same", () => {
  const other = new ExtensionCodec();
  other.register({
    type: EXT_TIMESTAMP,
    encode: () => null,
    decode: (d: Uint8Array) => decodeTimestampToTimeSpec(d),
  });
  for (const [t, bytes] of [
    [new Timestamp(T, 0), 4], // whole seconds: timestamp 32
    [new Timestamp(T + 838, 232_225), 8], // timestamp 64
    [new Timestamp(Date.parse("2600-01-01T00:00:00Z") + 1, 5), 12], // beyond 2^34 s: timestamp 96
  ] as const) {
    const packed = pack(t);
    expect(packed.length).toBe(bytes + 2 + (bytes === 12 ? 1 : 0));
    expect(unpack(packed)).toEqual(t);
    expect(decode(packed, { extensionCodec: other })).toEqual({ sec: t.seconds, nsec: t.nanosOfSecond });
  }
  // And what another library writes (a Date, to the millisecond) reads back.
  expect(unpack(encode(new Date(T + 5)))).toEqual(new Timestamp(T + 5, 0));
});

test("a frame spliced from packed messages is the array of them, at every header size", () => {
  for (const n of [0, 15, 16, 65_535, 65_536]) {
    const items = Array.from({ length: n }, (_, k) => ({ k }));
    expect(unpack(packedArray(items.map((i) => pack(i))))).toEqual(items);
  }
});
