import { isRecord } from "../core/records";
import { unpack } from "./msgpack";
import { timestampOf } from "./timestamp";

/**
 * The market-data wire protocol: Alpaca market-data v2 (stream and REST), the subset tickgraph uses.
 * The mock feed speaks it and the ingest client consumes it, so any provider that speaks the same
 * protocol can replace the mock. Nothing here depends on the mock: it is safe to import from ingest.
 *
 * Stream: connect to `ws://host:port/v2/iex` (or `/v2/sip`, or `/v2/test` for the test stream of
 * {@link TEST_SYMBOL}); every server frame is an array of messages, JSON text by default, msgpack binary
 * when the upgrade request carries `Content-Type: application/msgpack`. Flow:
 * `[{"T":"success","msg":"connected"}]` → client `auth` → `[{"T":"success","msg":"authenticated"}]` →
 * client `subscribe` → `[{"T":"subscription",…}]` → arrays of `t`/`q`/`b`/`u`/`d`. Event times are
 * RFC 3339 with nanoseconds in JSON and the msgpack timestamp extension in msgpack.
 *
 * REST (headers `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY`), each for one symbol (`/v2/stocks/{symbol}/…`)
 * and for several (`/v2/stocks/…?symbols=A,B`): trades, quotes, bars (`timeframe`), `…/latest` of each,
 * snapshot(s). History endpoints take `start`, `end`, `limit`, `sort` and `page_token`, and answer
 * `next_page_token`. Also `GET /v2/assets` → {@link Asset}[] (the instrument universe; Alpaca serves
 * assets from its trading API, not its data API).
 */

/** Stream paths the server accepts; both serve the same consolidated data. */
export const STREAM_PATHS = ["/v2/iex", "/v2/sip"] as const;
/** The test stream: one made-up symbol, always trading. */
export const TEST_STREAM_PATH = "/v2/test";
/** The test stream's symbol (Alpaca's). */
export const TEST_SYMBOL = "FAKEPACA";

/** The upgrade request's `Content-Type` that asks for msgpack frames. */
export const MSGPACK_CONTENT_TYPE = "application/msgpack";
/** How frames are encoded on one connection. */
export type WireFormat = "json" | "msgpack";

/** REST authentication headers (Alpaca's names). */
export const KEY_HEADER = "APCA-API-KEY-ID";
export const SECRET_HEADER = "APCA-API-SECRET-KEY";

/** Every value of `T` a server message can carry. */
export type MessageType = "success" | "error" | "subscription" | "t" | "q" | "b" | "u" | "d";

/**
 * The stock stream's channels, in the order the subscription message lists them. Subscribing to trades
 * also subscribes to corrections and cancelErrors for the same symbols, as Alpaca does.
 */
export const CHANNELS = [
  "trades",
  "quotes",
  "bars",
  "updatedBars",
  "dailyBars",
  "statuses",
  "lulds",
  "corrections",
  "cancelErrors",
] as const;
export type Channel = (typeof CHANNELS)[number];
/** Accepted and echoed (only while non-empty), though nothing is sent on it. */
export const IMBALANCES = "imbalances";
/** Channels of Alpaca's other streams: subscribing to them here is error 410. */
export const FOREIGN_CHANNELS = ["orderbooks", "news"] as const;

/** The channel that carries each data message type. */
export const CHANNEL_OF = { t: "trades", q: "quotes", b: "bars", u: "updatedBars", d: "dailyBars" } as const;
export type DataType = keyof typeof CHANNEL_OF;

/** Alpaca's stream error codes. */
export const ErrorCode = {
  /** Not JSON, not an object, unknown action or a field of the wrong type. Connection stays open. */
  INVALID_SYNTAX: 400,
  /** subscribe/unsubscribe before auth. Connection stays open. */
  NOT_AUTHENTICATED: 401,
  /** Wrong key or secret. The server closes the connection. */
  AUTH_FAILED: 402,
  /** A second auth on an authenticated connection. Connection stays open. */
  ALREADY_AUTHENTICATED: 403,
  /** No auth within the timeout after connecting. The server closes the connection. */
  AUTH_TIMEOUT: 404,
  /** The subscription would exceed the per-connection symbol limit; it is left unchanged. */
  SYMBOL_LIMIT_EXCEEDED: 405,
  /** Too many authenticated connections for this key. The server closes the connection. */
  CONNECTION_LIMIT_EXCEEDED: 406,
  /** The client reads too slowly (the server's send buffer is over its bound). The server closes. */
  SLOW_CLIENT: 407,
  /** A subscribe naming a channel of another stream (orderbooks, news). Connection stays open. */
  INVALID_SUBSCRIBE_ACTION: 410,
  INTERNAL_ERROR: 500,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The `msg` sent with each code. */
export const ERROR_MESSAGES: Readonly<Record<ErrorCode, string>> = {
  400: "invalid syntax",
  401: "not authenticated",
  402: "auth failed",
  403: "already authenticated",
  404: "auth timeout",
  405: "symbol limit exceeded",
  406: "connection limit exceeded",
  407: "slow client",
  410: "invalid subscribe action for this feed",
  500: "internal error",
};

/** Connection progress. */
export interface SuccessMessage {
  T: "success";
  msg: "connected" | "authenticated";
}

export interface ErrorMessage {
  T: "error";
  code: ErrorCode;
  msg: string;
}

/**
 * Sent after every (un)subscribe: the connection's full current set per channel, `"*"` meaning every
 * symbol. `imbalances` appears only while the connection holds some.
 */
export type SubscriptionMessage = { T: "subscription" } & Record<Channel, string[]> & {
    imbalances?: string[];
  };

/**
 * One trade (a print). In msgpack, `t` is the msgpack timestamp extension (a {@link Timestamp} once
 * decoded) rather than a string.
 */
export interface TradeMessage {
  T: "t";
  /** Symbol. */
  S: string;
  /**
   * Trade id: rises by exactly one per symbol, starting at 1, so a missing id is a gap to backfill over
   * REST. Unique per symbol: a second message with a seen id is a duplicate.
   */
  i: number;
  /** Exchange code where the trade executed (e.g. "V" IEX, "Q" Nasdaq, "N" NYSE, "P" Arca). */
  x: string;
  /** Price, > 0. */
  p: number;
  /** Size in shares, integer > 0. */
  s: number;
  /**
   * Event time, RFC 3339 UTC with up to nine fraction digits (trailing zeros dropped). Non-decreasing per
   * symbol in id order, except that a late trade carries a time in the past and an out-of-order trade
   * arrives after a higher id.
   */
  t: string;
  /** Condition codes ("@" regular sale, "I" odd lot, "F" intermarket sweep). */
  c: string[];
  /** Tape: "A" NYSE-listed, "B" Arca/regional, "C" Nasdaq-listed. */
  z: string;
}

/** Top of book. */
export interface QuoteMessage {
  T: "q";
  S: string;
  bx: string;
  bp: number;
  bs: number;
  ax: string;
  ap: number;
  as: number;
  t: string;
  c: string[];
  z: string;
}

/**
 * A bar: a minute bar (`b`, sent right after the minute), an updated minute bar (`u`, a late trade
 * changed a minute already sent) or the daily bar so far (`d`). `t` is the interval's start.
 */
export interface BarMessage {
  T: "b" | "u" | "d";
  S: string;
  o: number;
  h: number;
  l: number;
  c: number;
  /** Volume: Σ size. */
  v: number;
  t: string;
  /** Number of trades. */
  n: number;
  /** Volume-weighted average price, Σ(price × size) / Σ size. */
  vw: number;
}

export type DataMessage = TradeMessage | QuoteMessage | BarMessage;
export type ServerMessage = SuccessMessage | ErrorMessage | SubscriptionMessage | DataMessage;
/** What one server frame decodes to. */
export type ServerFrame = ServerMessage[];

export interface AuthMessage {
  action: "auth";
  key: string;
  secret: string;
}

/** Lists per channel; `"*"` in a list means every symbol. */
export type SubscribeMessage = { action: "subscribe" | "unsubscribe" } & Partial<Record<Channel, string[]>>;

export type ClientMessage = AuthMessage | SubscribeMessage;

// ---- REST ----

/** A trade as REST returns it: the stream's trade without `T` and `S`. */
export type RestTrade = Omit<TradeMessage, "T" | "S">;
/** A quote as REST returns it. */
export type RestQuote = Omit<QuoteMessage, "T" | "S">;
/** A bar as REST returns it. */
export type RestBar = Omit<BarMessage, "T" | "S">;

/** `GET /v2/stocks/{symbol}/trades`: pass `next_page_token` back as `page_token` for the next page. */
export interface TradesPage {
  trades: RestTrade[];
  symbol: string;
  next_page_token: string | null;
}

/** `GET /v2/stocks/trades?symbols=`: by symbol (ascending), then time; `limit` counts all symbols. */
export interface MultiTradesPage {
  trades: Record<string, RestTrade[]>;
  next_page_token: string | null;
}

export interface QuotesPage {
  quotes: RestQuote[];
  symbol: string;
  next_page_token: string | null;
}

export interface MultiQuotesPage {
  quotes: Record<string, RestQuote[]>;
  next_page_token: string | null;
}

export interface BarsPage {
  bars: RestBar[];
  symbol: string;
  next_page_token: string | null;
}

export interface MultiBarsPage {
  bars: Record<string, RestBar[]>;
  next_page_token: string | null;
}

/** `GET /v2/stocks/{symbol}/trades/latest` (and quotes, bars: `quote`, `bar`). */
export interface LatestTrade {
  symbol: string;
  trade: RestTrade;
}

export interface Snapshot {
  /** null until the symbol has traded. */
  latestTrade: RestTrade | null;
  latestQuote: RestQuote | null;
  /** The newest minute bar sent on the stream. */
  minuteBar: RestBar | null;
  /** The newest UTC day's bar so far. */
  dailyBar: RestBar | null;
  /** The UTC day's before it. */
  prevDailyBar: RestBar | null;
}

/** `GET /v2/stocks/snapshots?symbols=`: unknown symbols are left out. */
export type SnapshotsResponse = Record<string, Snapshot>;

export type ListingExchange = "NASDAQ" | "NYSE" | "ARCA";

/** Instrument reference data (`GET /v2/assets`). */
export interface Asset {
  symbol: string;
  name: string;
  /** Listing exchange. */
  exchange: ListingExchange;
  /** GICS-style sector name. */
  sector: string;
}

/**
 * Every REST error body, with Alpaca's codes: 40010001 bad request (an unexpected query parameter),
 * 40110000 unauthorized, 40410000 not found, 42210000 invalid parameter value.
 */
export interface RestError {
  code: number;
  message: string;
}

// ---- validation ----

function isNonEmptyString(v: unknown): v is string {
  return typeof v === "string" && v.length > 0;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

function isPositive(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v > 0;
}

function isTime(v: unknown): boolean {
  return timestampOf(v) !== undefined;
}

/**
 * Why `m` is not a valid trade, or undefined when it is one. Checks shape and ranges only: whether the
 * symbol exists, the id is new and the time is on time is for the consumer to judge.
 */
export function tradeProblem(m: unknown): string | undefined {
  if (!isRecord(m)) return "not an object";
  if (m.T !== "t") return `T is ${JSON.stringify(m.T)}, not "t"`;
  if (!isNonEmptyString(m.S)) return "S (symbol) missing or not a string";
  if (typeof m.i !== "number" || !Number.isSafeInteger(m.i) || m.i < 1)
    return "i (id) not a positive integer";
  if (!isNonEmptyString(m.x)) return "x (exchange) missing or not a string";
  if (!isPositive(m.p)) return "p (price) not a positive number";
  if (!isPositive(m.s) || !Number.isInteger(m.s)) return "s (size) not a positive integer";
  if (!isTime(m.t)) return "t (time) not an RFC 3339 time";
  if (!isStringArray(m.c)) return "c (conditions) not an array of strings";
  if (typeof m.z !== "string") return "z (tape) missing or not a string";
  return undefined;
}

/** Why `m` is not a valid quote, or undefined when it is one (bid must not exceed ask). */
export function quoteProblem(m: unknown): string | undefined {
  if (!isRecord(m)) return "not an object";
  if (m.T !== "q") return `T is ${JSON.stringify(m.T)}, not "q"`;
  if (!isNonEmptyString(m.S)) return "S (symbol) missing or not a string";
  if (!isPositive(m.bp) || !isPositive(m.ap)) return "bp/ap (bid/ask price) not positive numbers";
  if (m.bp > m.ap) return "bp (bid) above ap (ask)";
  if (!isPositive(m.bs) || !isPositive(m.as)) return "bs/as (bid/ask size) not positive numbers";
  if (typeof m.bx !== "string" || typeof m.ax !== "string") return "bx/ax (exchanges) not strings";
  if (!isTime(m.t)) return "t (time) not an RFC 3339 time";
  return undefined;
}

/** Why `m` is not a valid bar, or undefined when it is one. */
export function barProblem(m: unknown): string | undefined {
  if (!isRecord(m)) return "not an object";
  if (m.T !== "b" && m.T !== "u" && m.T !== "d") return `T is ${JSON.stringify(m.T)}, not a bar`;
  if (!isNonEmptyString(m.S)) return "S (symbol) missing or not a string";
  if (![m.o, m.h, m.l, m.c, m.vw].every(isPositive)) return "o/h/l/c/vw not positive numbers";
  if (!((m.l as number) <= (m.o as number) && (m.o as number) <= (m.h as number)))
    return "o (open) outside l…h";
  if (!((m.l as number) <= (m.c as number) && (m.c as number) <= (m.h as number)))
    return "c (close) outside l…h";
  if (!isPositive(m.v) || !Number.isInteger(m.v)) return "v (volume) not a positive integer";
  if (!isPositive(m.n) || !Number.isInteger(m.n)) return "n (trade count) not a positive integer";
  if (!isTime(m.t)) return "t (time) not an RFC 3339 time";
  return undefined;
}

export function isTrade(m: unknown): m is TradeMessage {
  return tradeProblem(m) === undefined;
}

export function isQuote(m: unknown): m is QuoteMessage {
  return quoteProblem(m) === undefined;
}

export function isBar(m: unknown): m is BarMessage {
  return barProblem(m) === undefined;
}

export function isErrorMessage(m: unknown): m is ErrorMessage {
  return isRecord(m) && m.T === "error" && typeof m.code === "number" && typeof m.msg === "string";
}

export function isSuccessMessage(m: unknown): m is SuccessMessage {
  return isRecord(m) && m.T === "success" && (m.msg === "connected" || m.msg === "authenticated");
}

export function isSubscriptionMessage(m: unknown): m is SubscriptionMessage {
  return isRecord(m) && m.T === "subscription" && CHANNELS.every((c) => isStringArray(m[c]));
}

/** The outcome of checking one element of a server frame. */
export type Checked = { ok: true; message: ServerMessage } | { ok: false; reason: string };

/** Checks one element of a server frame; a failure's `reason` suits a quarantine record. */
export function checkServerMessage(m: unknown): Checked {
  if (!isRecord(m)) return { ok: false, reason: "not an object" };
  let reason: string | undefined;
  switch (m.T) {
    case "t":
      reason = tradeProblem(m);
      break;
    case "q":
      reason = quoteProblem(m);
      break;
    case "b":
    case "u":
    case "d":
      reason = barProblem(m);
      break;
    case "success":
      reason = isSuccessMessage(m) ? undefined : "malformed success message";
      break;
    case "error":
      reason = isErrorMessage(m) ? undefined : "malformed error message";
      break;
    case "subscription":
      reason = isSubscriptionMessage(m) ? undefined : "malformed subscription message";
      break;
    default:
      reason = `unknown message type T=${JSON.stringify(m.T)}`;
  }
  return reason === undefined ? { ok: true, message: m as unknown as ServerMessage } : { ok: false, reason };
}

/** A server frame as it came off the socket: text (JSON) or binary (msgpack). */
export type RawFrame = { binary: false; text: string } | { binary: true; data: Buffer };

/**
 * Decodes one frame. A frame that is not an array fails as a whole; otherwise each element is checked on
 * its own, so one bad message never hides the good ones beside it.
 */
export function decodeServerFrame(
  frame: RawFrame,
): { ok: true; items: Checked[] } | { ok: false; reason: string } {
  let parsed: unknown;
  try {
    parsed = frame.binary ? unpack(frame.data) : JSON.parse(frame.text);
  } catch {
    return { ok: false, reason: frame.binary ? "frame is not msgpack" : "frame is not JSON" };
  }
  if (!Array.isArray(parsed)) return { ok: false, reason: "frame is not an array" };
  return { ok: true, items: parsed.map(checkServerMessage) };
}

/** Decodes one JSON text frame (see `decodeServerFrame`). */
export function parseServerFrame(text: string): ReturnType<typeof decodeServerFrame> {
  return decodeServerFrame({ binary: false, text });
}
