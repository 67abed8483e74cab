import express, { type NextFunction, type Request, type Response } from "express";
import { log } from "../log";
import { barsFromHistory, DAY_MS, parseTimeframe, type Bar, type BarBuilder } from "./bars";
import { credentialsMatch } from "./credentials";
import { restBar, restQuote, restTrade } from "./message.serializer";
import {
  KEY_HEADER,
  SECRET_HEADER,
  type Asset,
  type RestBar,
  type RestError,
  type RestQuote,
  type RestTrade,
  type Snapshot,
} from "./protocol";
import { parseRfc3339, Timestamp } from "./timestamp";
import type { QuoteHistory, TradeHistory } from "./trade.history";
import { TAPE_OF, type Instrument } from "./universe";

/** What the REST endpoints read from the running feed. */
export interface RestSource {
  key: string;
  secret: string;
  instruments: readonly Instrument[];
  symbolIndex: ReadonlyMap<string, number>;
  trades: TradeHistory;
  quotes: QuoteHistory;
  bars: BarBuilder;
  /** The market's now (simulated), epoch ms: what a missing `start` is the UTC day of. */
  now(): number;
}

export const DEFAULT_PAGE_LIMIT = 1000;
export const MAX_PAGE_LIMIT = 10_000;

/** A request the feed refuses, with Alpaca's status and code. */
class RestFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** 422: a parameter's value cannot be used. */
const invalid = (message: string) => new RestFailure(422, 42210000, message);
const notFound = (message: string) => new RestFailure(404, 40410000, message);

const FEEDS = ["iex", "sip", "delayed_sip", "boats", "overnight", "otc"];
/** Parameters every data endpoint takes; the mock serves one consolidated market in USD, so they change nothing. */
const COMMON = ["feed", "currency"];
const HISTORY = [...COMMON, "start", "end", "limit", "page_token", "sort", "asof"];
const SYMBOL = /^[A-Za-z0-9./-]{1,32}$/;

/** The query parameters of a request, checked against what the endpoint takes. */
class Query {
  constructor(
    private readonly req: Request,
    allowed: readonly string[],
  ) {
    const unexpected = Object.keys(req.query).filter((k) => !allowed.includes(k));
    // Alpaca refuses a parameter an endpoint does not take, rather than ignore a misspelt one.
    if (unexpected.length)
      throw new RestFailure(400, 40010001, `unexpected query parameter(s): ${unexpected.join(", ")}`);
    const feed = this.get("feed");
    if (feed !== undefined && !FEEDS.includes(feed))
      throw invalid(`invalid feed: use one of ${FEEDS.join(", ")}`);
    const currency = this.get("currency");
    if (currency !== undefined && currency !== "USD")
      throw invalid("invalid currency: the mock feed serves prices in USD only");
  }

  get(name: string): string | undefined {
    const v = (this.req.query as Record<string, unknown>)[name];
    if (v === undefined || v === "") return undefined;
    if (typeof v !== "string") throw invalid(`${name} must be given once`);
    return v;
  }

  /** The `symbols` list, trimmed, de-duplicated and sorted (results come by symbol). */
  symbols(): string[] {
    const list = this.get("symbols");
    if (!list) throw invalid("symbols is required, e.g. ?symbols=AAPL,MSFT");
    const out = [...new Set(list.split(",").map((s) => s.trim()))].sort();
    const bad = out.find((s) => !SYMBOL.test(s));
    if (bad !== undefined) throw invalid(`invalid symbol: ${JSON.stringify(bad)}`);
    return out;
  }
}

/** Refuses a request with parameters the endpoint does not take or cannot use. */
function checkParams(req: Request, allowed: readonly string[]): void {
  void new Query(req, allowed);
}

/** An RFC 3339 time, or a bare date (midnight UTC). */
function parseTime(value: string, name: string): Timestamp {
  const t = /^\d{4}-\d{2}-\d{2}$/.test(value) ? parseRfc3339(`${value}T00:00:00Z`) : parseRfc3339(value);
  if (!t)
    throw invalid(`invalid ${name}: use RFC 3339, e.g. 2026-01-05T14:30:00Z, or a date, e.g. 2026-01-05`);
  return t;
}

/** Where a page resumes: the symbol and its position (a trade or quote id, or a bar's start). */
interface Token {
  symbol: string;
  position: number;
}

function encodeToken(t: Token): string {
  return Buffer.from(JSON.stringify([t.symbol, t.position])).toString("base64url");
}

function decodeToken(token: string, symbols: readonly string[]): Token {
  try {
    const v: unknown = JSON.parse(Buffer.from(token, "base64url").toString());
    if (Array.isArray(v) && symbols.includes(v[0] as string) && Number.isSafeInteger(v[1]))
      return { symbol: v[0] as string, position: v[1] as number };
  } catch {
    // falls through to the error below
  }
  throw invalid("invalid page_token: pass back next_page_token from the previous page of the same request");
}

/** What a history endpoint was asked for. */
interface Range {
  start: Timestamp;
  end?: Timestamp;
  limit: number;
  desc: boolean;
  pageToken?: string;
}

function range(q: Query, now: number): Range {
  const startRaw = q.get("start");
  const endRaw = q.get("end");
  const limitRaw = q.get("limit");
  const sort = q.get("sort") ?? "asc";
  // As Alpaca: without `start`, from the beginning of the current (UTC) day.
  const start =
    startRaw === undefined ? new Timestamp(Math.floor(now / DAY_MS) * DAY_MS) : parseTime(startRaw, "start");
  const end = endRaw === undefined ? undefined : parseTime(endRaw, "end");
  if (end && (end.ms < start.ms || (end.ms === start.ms && end.nanos < start.nanos)))
    throw invalid("end should not be before start");
  const limit = limitRaw === undefined ? DEFAULT_PAGE_LIMIT : Number(limitRaw);
  if (!/^\d+$/.test(limitRaw ?? "1") || !Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT)
    throw invalid(`invalid limit: use a whole number from 1 to ${MAX_PAGE_LIMIT}`);
  if (sort !== "asc" && sort !== "desc") throw invalid("invalid sort: use asc or desc");
  return { start, end, limit, desc: sort === "desc", pageToken: q.get("page_token") };
}

/** One symbol's share of a page: rows from `from` on (in the page's order), and where to resume. */
type Fetch<T> = (sym: number, from: number | undefined, room: number) => { rows: T[]; next: number | null };

/**
 * A page across symbols, as Alpaca pages them: by symbol (ascending), then in time order, `limit` rows
 * over all symbols together; the token names the symbol and position the next page starts at.
 */
function pageAcross<T>(
  src: RestSource,
  symbols: readonly string[],
  r: Range,
  fetch: Fetch<T>,
): { data: Record<string, T[]>; next: string | null } {
  const token = r.pageToken === undefined ? undefined : decodeToken(r.pageToken, symbols);
  const data: Record<string, T[]> = {};
  let room = r.limit;
  for (let k = token ? symbols.indexOf(token.symbol) : 0; k < symbols.length; k++) {
    const sym = src.symbolIndex.get(symbols[k]);
    if (sym === undefined) continue;
    // With no room left, this asks only whether the symbol has anything: if so, the next page starts there.
    const page = fetch(sym, token?.symbol === symbols[k] ? token.position : undefined, room);
    if (page.rows.length) data[symbols[k]] = page.rows;
    room -= page.rows.length;
    if (page.next !== null) return { data, next: encodeToken({ symbol: symbols[k], position: page.next }) };
  }
  return { data, next: null };
}

function sendError(res: Response, status: number, code: number, message: string): void {
  const body: RestError = { code, message };
  res.status(status).json(body);
}

/**
 * The REST half of the feed: Alpaca's market-data v2 stock endpoints, all behind the `APCA-API-KEY-ID` /
 * `APCA-API-SECRET-KEY` headers. Errors are JSON `{code, message}`: 400 → 40010001 (a parameter the
 * endpoint does not take), 401 → 40110000, 404 → 40410000, 422 → 42210000 (a value that cannot be used).
 */
export function restApp(src: RestSource): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");

  app.use((req: Request, res: Response, next: NextFunction) => {
    const key = req.get(KEY_HEADER);
    const secret = req.get(SECRET_HEADER);
    if (key === undefined || secret === undefined || !credentialsMatch(key, secret, src.key, src.secret)) {
      return sendError(
        res,
        401,
        40110000,
        `request is not authorized: send ${KEY_HEADER} and ${SECRET_HEADER}`,
      );
    }
    next();
  });

  const tape = (sym: number) => TAPE_OF[src.instruments[sym].exchange];
  const symbolOf = (req: Request): number => {
    const sym = src.symbolIndex.get(req.params.symbol as string);
    if (sym === undefined) throw notFound(`unknown symbol: ${req.params.symbol as string}`);
    return sym;
  };

  const latestTrade = (sym: number): RestTrade | null => {
    const t = src.trades.get(sym, src.trades.newestId(sym));
    return t ? restTrade(t, tape(sym)) : null;
  };
  const latestQuote = (sym: number): RestQuote | null => {
    const q = src.quotes.get(sym, src.quotes.newestId(sym));
    return q ? restQuote(q, tape(sym)) : null;
  };
  const latestBar = (sym: number): RestBar | null => {
    const b = src.bars.latestMinute(sym);
    return b ? restBar(b.startMs, b.agg) : null;
  };
  const snapshot = (sym: number): Snapshot => {
    const days = src.bars.dailyBars(sym);
    const day = days.at(-1);
    const prev = days.at(-2);
    return {
      latestTrade: latestTrade(sym),
      latestQuote: latestQuote(sym),
      minuteBar: latestBar(sym),
      dailyBar: day ? restBar(day.startMs, day.agg) : null,
      prevDailyBar: prev ? restBar(prev.startMs, prev.agg) : null,
    };
  };

  const tradesOf =
    (r: Range): Fetch<RestTrade> =>
    (sym, from, room) => {
      const p = src.trades.page(sym, { fromId: from, start: r.start, end: r.end, limit: room, desc: r.desc });
      return { rows: p.rows.map((t) => restTrade(t, tape(sym))), next: p.nextId };
    };
  const quotesOf =
    (r: Range): Fetch<RestQuote> =>
    (sym, from, room) => {
      const p = src.quotes.page(sym, { fromId: from, start: r.start, end: r.end, limit: room, desc: r.desc });
      return { rows: p.rows.map((q) => restQuote(q, tape(sym))), next: p.nextId };
    };
  const barsOf = (q: Query, r: Range): Fetch<RestBar> => {
    const raw = q.get("timeframe");
    if (raw === undefined) throw invalid("timeframe is required, e.g. 1Min, 5Min, 15Min, 1Hour, 1Day");
    const size = parseTimeframe(raw);
    if (size === undefined)
      throw invalid(
        "invalid timeframe: use [1-59]Min, [1-23]Hour or 1Day (the mock serves no weeks or months)",
      );
    const adjustment = q.get("adjustment");
    if (
      adjustment !== undefined &&
      !/^(raw|split|dividend|spin-off|all)(,(raw|split|dividend|spin-off|all))*$/.test(adjustment)
    )
      throw invalid("invalid adjustment: use raw, split, dividend, spin-off or all");
    // A bar is in range when its start is: bars start on whole milliseconds.
    const fromMs = r.start.ms + (r.start.nanos > 0 ? 1 : 0);
    const toMs = r.end?.ms;
    return (sym, from, room) => {
      // Daily bars are kept whole for every day; shorter ones are aggregated from the trade history.
      let bars: Bar[] =
        size === DAY_MS
          ? src.bars
              .dailyBars(sym)
              .filter((b) => b.startMs >= fromMs && (toMs === undefined || b.startMs <= toMs))
          : barsFromHistory(src.trades, sym, size, fromMs, toMs);
      if (r.desc) bars = bars.reverse();
      if (from !== undefined) bars = bars.filter((b) => (r.desc ? b.startMs <= from : b.startMs >= from));
      const rows = bars.slice(0, room).map((b) => restBar(b.startMs, b.agg));
      return { rows, next: bars.length > room ? bars[room].startMs : null };
    };
  };

  app.get("/v2/assets", (_req, res) => {
    const assets: Asset[] = src.instruments.map(({ symbol, name, exchange, sector }) => ({
      symbol,
      name,
      exchange,
      sector,
    }));
    res.json(assets);
  });

  // Several symbols at once. Registered before the one-symbol routes, which would take "trades" for a symbol.
  app.get("/v2/stocks/trades", (req, res) => {
    const q = new Query(req, ["symbols", ...HISTORY]);
    const symbols = q.symbols();
    const r = range(q, src.now());
    const page = pageAcross(src, symbols, r, tradesOf(r));
    res.json({ trades: page.data, next_page_token: page.next });
  });
  app.get("/v2/stocks/quotes", (req, res) => {
    const q = new Query(req, ["symbols", ...HISTORY]);
    const symbols = q.symbols();
    const r = range(q, src.now());
    const page = pageAcross(src, symbols, r, quotesOf(r));
    res.json({ quotes: page.data, next_page_token: page.next });
  });
  app.get("/v2/stocks/bars", (req, res) => {
    const q = new Query(req, ["symbols", "timeframe", "adjustment", ...HISTORY]);
    const symbols = q.symbols();
    const r = range(q, src.now());
    const page = pageAcross(src, symbols, r, barsOf(q, r));
    res.json({ bars: page.data, next_page_token: page.next });
  });
  const latestOfMany =
    <T>(name: string, of: (sym: number) => T | null) =>
    (req: Request, res: Response) => {
      const q = new Query(req, ["symbols", ...COMMON]);
      const out: Record<string, T> = {};
      for (const symbol of q.symbols()) {
        const sym = src.symbolIndex.get(symbol);
        const v = sym === undefined ? null : of(sym);
        if (v !== null) out[symbol] = v;
      }
      res.json({ [name]: out });
    };
  app.get("/v2/stocks/trades/latest", latestOfMany("trades", latestTrade));
  app.get("/v2/stocks/quotes/latest", latestOfMany("quotes", latestQuote));
  app.get("/v2/stocks/bars/latest", latestOfMany("bars", latestBar));
  app.get("/v2/stocks/snapshots", (req, res) => {
    const q = new Query(req, ["symbols", ...COMMON]);
    const out: Record<string, Snapshot> = {};
    for (const symbol of q.symbols()) {
      const sym = src.symbolIndex.get(symbol);
      if (sym !== undefined) out[symbol] = snapshot(sym);
    }
    res.json(out);
  });

  // One symbol.
  app.get("/v2/stocks/:symbol/trades", (req, res) => {
    const sym = symbolOf(req);
    const r = range(new Query(req, HISTORY), src.now());
    const page = pageAcross(src, [req.params.symbol], r, tradesOf(r));
    res.json({
      trades: page.data[req.params.symbol] ?? [],
      symbol: src.instruments[sym].symbol,
      next_page_token: page.next,
    });
  });
  app.get("/v2/stocks/:symbol/quotes", (req, res) => {
    const sym = symbolOf(req);
    const r = range(new Query(req, HISTORY), src.now());
    const page = pageAcross(src, [req.params.symbol], r, quotesOf(r));
    res.json({
      quotes: page.data[req.params.symbol] ?? [],
      symbol: src.instruments[sym].symbol,
      next_page_token: page.next,
    });
  });
  app.get("/v2/stocks/:symbol/bars", (req, res) => {
    const sym = symbolOf(req);
    const q = new Query(req, ["timeframe", "adjustment", ...HISTORY]);
    const r = range(q, src.now());
    const page = pageAcross(src, [req.params.symbol], r, barsOf(q, r));
    res.json({
      bars: page.data[req.params.symbol] ?? [],
      symbol: src.instruments[sym].symbol,
      next_page_token: page.next,
    });
  });
  const latestOfOne =
    <T>(name: string, of: (sym: number) => T | null) =>
    (req: Request, res: Response) => {
      const sym = symbolOf(req);
      checkParams(req, COMMON);
      const v = of(sym);
      if (v === null) throw notFound(`no ${name} for ${req.params.symbol as string} yet`);
      res.json({ symbol: src.instruments[sym].symbol, [name]: v });
    };
  app.get("/v2/stocks/:symbol/trades/latest", latestOfOne("trade", latestTrade));
  app.get("/v2/stocks/:symbol/quotes/latest", latestOfOne("quote", latestQuote));
  app.get("/v2/stocks/:symbol/bars/latest", latestOfOne("bar", latestBar));
  app.get("/v2/stocks/:symbol/snapshot", (req, res) => {
    const sym = symbolOf(req);
    checkParams(req, COMMON);
    res.json({ symbol: src.instruments[sym].symbol, ...snapshot(sym) });
  });

  app.use((_req: Request, res: Response) => sendError(res, 404, 40410000, "endpoint not found"));

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof RestFailure) return sendError(res, err.status, err.code, err.message);
    // Express's own client errors (a malformed %-escape in the path, …) carry their status.
    const status = (err as { status?: unknown } | null)?.status;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return sendError(res, status, status * 100000 + 10001, "bad request");
    }
    log.error({ err }, "feed REST request failed");
    sendError(res, 500, 50010000, "internal error");
  });

  return app;
}
