/**
 * Event times as Alpaca sends them: nanosecond precision, RFC 3339 in JSON (Go's RFC3339Nano layout:
 * trailing zeros of the fraction dropped, no fraction at all on a whole second) and the msgpack
 * timestamp extension in msgpack. A JS number cannot hold epoch nanoseconds exactly (2^53 ns is about
 * 104 days), so an instant is kept as whole milliseconds plus the nanoseconds within that millisecond.
 */
export class Timestamp {
  /**
   * @param ms epoch milliseconds, an integer
   * @param nanos nanoseconds past `ms`, an integer from 0 to 999,999
   */
  constructor(
    readonly ms: number,
    readonly nanos: number = 0,
  ) {}

  /** From the msgpack extension's fields: whole seconds and the nanoseconds within that second. */
  static fromSeconds(seconds: number, nanosOfSecond: number): Timestamp {
    return new Timestamp(seconds * 1000 + Math.floor(nanosOfSecond / 1e6), nanosOfSecond % 1e6);
  }

  get seconds(): number {
    return Math.floor(this.ms / 1000);
  }

  /** Nanoseconds within the second, 0 to 999,999,999. */
  get nanosOfSecond(): number {
    return (this.ms - this.seconds * 1000) * 1e6 + this.nanos;
  }

  /** Epoch microseconds, truncated (Postgres keeps microseconds). Exact: below 2^53 until year 2255. */
  get micros(): number {
    return this.ms * 1000 + Math.floor(this.nanos / 1000);
  }

  /** RFC 3339 with up to nine fraction digits, as Alpaca writes it. */
  toJSON(): string {
    return rfc3339Nano(this.ms, this.nanos);
  }

  toString(): string {
    return this.toJSON();
  }
}

function trimFraction(digits: string): string {
  let end = digits.length;
  while (end > 0 && digits.charCodeAt(end - 1) === 48 /* 0 */) end--;
  return end === 0 ? "" : `.${digits.slice(0, end)}`;
}

/** Go's RFC3339Nano of an instant given as `ms` + `nanos`: 2026-01-05T14:30:00.1234567Z. */
export function rfc3339Nano(ms: number, nanos = 0, iso: string = new Date(ms).toISOString()): string {
  // iso is YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 19)}${trimFraction(iso.slice(20, 23) + String(nanos).padStart(6, "0"))}Z`;
}

// One-entry caches: consecutive event times nearly always share their second, so the costly part
// (Date parsing and formatting) runs once a second rather than once a message.
let microsSecond = NaN;
let microsPrefix = "";

/** The same instant with exactly six fraction digits, truncated: what Postgres stores, parsed exactly. */
export function rfc3339Micros(t: Timestamp): string {
  const second = t.seconds;
  if (second !== microsSecond) {
    microsSecond = second;
    microsPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  const micros = (t.ms - second * 1000) * 1000 + Math.floor(t.nanos / 1000);
  return `${microsPrefix}.${String(micros).padStart(6, "0")}Z`;
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;
let parsedPrefix = "";
let parsedSecondMs = NaN;

/**
 * An RFC 3339 date-time (`Z` or a numeric offset, up to nine fraction digits) as a Timestamp, or
 * undefined when `text` is not one (a bare date, a missing zone, an impossible date).
 */
export function parseRfc3339(text: string): Timestamp | undefined {
  // The common case, a UTC time in the same second as the one before: check the rest by hand.
  if (parsedPrefix !== "" && text.endsWith("Z") && text.startsWith(parsedPrefix)) {
    const n = text.length - 1;
    if (n === 19) return new Timestamp(parsedSecondMs, 0);
    if (text.charCodeAt(19) === 46 /* . */ && n > 20 && n <= 29) {
      let frac = 0;
      for (let k = 20; k < n; k++) {
        const d = text.charCodeAt(k) - 48;
        if (d < 0 || d > 9) return undefined;
        frac = frac * 10 + d;
      }
      frac *= 10 ** (29 - n); // nanoseconds
      return new Timestamp(parsedSecondMs + Math.floor(frac / 1e6), frac % 1e6);
    }
  }
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const seconds = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(seconds)) return undefined;
  // Date.parse accepts some impossible dates (2026-02-30 rolls over): the round trip must agree.
  if (m[3] === "Z") {
    if (new Date(seconds).toISOString().slice(0, 19) !== m[1]) return undefined;
    parsedPrefix = m[1];
    parsedSecondMs = seconds;
  }
  const frac = (m[2] ?? "").padEnd(9, "0");
  return new Timestamp(seconds + Number(frac.slice(0, 3)), Number(frac.slice(3)));
}

/** An event time as it came off the wire: an RFC 3339 string (JSON) or a Timestamp (msgpack). */
export function timestampOf(v: unknown): Timestamp | undefined {
  if (v instanceof Timestamp) return v;
  return typeof v === "string" ? parseRfc3339(v) : undefined;
}
