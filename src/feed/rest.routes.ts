import express, { type NextFunction, type Request, type Response } from "express";
import { log } from "../log";
import { credentialsMatch } from "./credentials";
import { restQuote, restTrade } from "./message.serializer";
import {
  KEY_HEADER,
  SECRET_HEADER,
  type Asset,
  type RestError,
  type Snapshot,
  type SnapshotsResponse,
  type TradesPage,
} from "./protocol";
import type { GeneratedQuote } from "./trade.generator";
import type { TradeHistory } from "./trade.history";
import { TAPE_OF, type Instrument } from "./universe";

/** What the REST endpoints read from the running feed. */
export interface RestSource {
  key: string;
  secret: string;
  instruments: readonly Instrument[];
  symbolIndex: ReadonlyMap<string, number>;
  history: TradeHistory;
  latestQuote(sym: number): GeneratedQuote | undefined;
}

export const DEFAULT_PAGE_LIMIT = 1000;
export const MAX_PAGE_LIMIT = 10_000;

class BadRequest extends Error {}

const RFC3339 = /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2}))?$/;

/**
 * An RFC 3339 time (or a bare date, midnight UTC) as epoch ms. Fractions finer than a millisecond round
 * inwards (`start` up, `end` down), so the range never takes in a trade outside what was asked.
 */
function parseTime(value: string, name: string, round: "up" | "down"): number {
  const m = RFC3339.exec(value);
  const whole = m ? Date.parse(m[2] ? `${m[1]}T${m[2]}${m[4]}` : `${m[1]}T00:00:00Z`) : NaN;
  if (Number.isNaN(whole)) throw new BadRequest(`invalid ${name}: use RFC 3339, e.g. 2026-01-05T14:30:00Z`);
  const frac = m![3] ? Number(`0.${m![3]}`) * 1000 : 0;
  return whole + (round === "up" ? Math.ceil(frac) : Math.floor(frac));
}

function queryString(req: Request, name: string): string | undefined {
  const v = (req.query as Record<string, unknown>)[name];
  if (v === undefined || v === "") return undefined;
  if (typeof v !== "string") throw new BadRequest(`${name} must be given once`);
  return v;
}

function encodeToken(symbol: string, id: number): string {
  return Buffer.from(JSON.stringify([symbol, id])).toString("base64url");
}

function decodeToken(token: string, symbol: string): number {
  try {
    const v: unknown = JSON.parse(Buffer.from(token, "base64url").toString());
    if (Array.isArray(v) && v[0] === symbol && Number.isSafeInteger(v[1]) && v[1] >= 1) return v[1] as number;
  } catch {
    // falls through to the error below
  }
  throw new BadRequest("invalid page_token: pass back next_page_token from the previous page of this symbol");
}

function sendError(res: Response, status: number, code: number, message: string): void {
  const body: RestError = { code, message };
  res.status(status).json(body);
}

/**
 * The REST half of the feed (Alpaca market-data v2 paths), all behind the `APCA-API-KEY-ID` /
 * `APCA-API-SECRET-KEY` headers. Errors are JSON `{code, message}`: 400 → 40010001, 401 → 40110000,
 * 404 → 40410000.
 */
export function restApp(src: RestSource): express.Express {
  const app = express();
  app.disable("x-powered-by");

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

  const snapshot = (sym: number): Snapshot => {
    const inst = src.instruments[sym];
    const last = src.history.get(sym, src.history.newestId(sym));
    const quote = src.latestQuote(sym);
    return {
      latestTrade: last ? restTrade({ ...last, tape: TAPE_OF[inst.exchange] }) : null,
      latestQuote: quote ? restQuote(quote) : null,
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

  app.get("/v2/stocks/snapshots", (req, res) => {
    const list = queryString(req, "symbols");
    if (!list) throw new BadRequest("symbols is required, e.g. ?symbols=AAPL,MSFT");
    const out: SnapshotsResponse = {};
    for (const raw of list.split(",")) {
      const symbol = raw.trim();
      const sym = src.symbolIndex.get(symbol);
      if (sym !== undefined) out[symbol] = snapshot(sym);
    }
    res.json(out);
  });

  app.get("/v2/stocks/:symbol/snapshot", (req, res) => {
    const sym = src.symbolIndex.get(req.params.symbol);
    if (sym === undefined) return sendError(res, 404, 40410000, `unknown symbol: ${req.params.symbol}`);
    res.json(snapshot(sym));
  });

  app.get("/v2/stocks/:symbol/trades", (req, res) => {
    const symbol = req.params.symbol;
    const sym = src.symbolIndex.get(symbol);
    if (sym === undefined) return sendError(res, 404, 40410000, `unknown symbol: ${symbol}`);
    const startRaw = queryString(req, "start");
    const endRaw = queryString(req, "end");
    const limitRaw = queryString(req, "limit");
    const tokenRaw = queryString(req, "page_token");
    const startMs = startRaw === undefined ? undefined : parseTime(startRaw, "start", "up");
    const endMs = endRaw === undefined ? undefined : parseTime(endRaw, "end", "down");
    if (startMs !== undefined && endMs !== undefined && startMs > endMs)
      throw new BadRequest("start is after end");
    const limit = limitRaw === undefined ? DEFAULT_PAGE_LIMIT : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
      throw new BadRequest(`invalid limit: use a whole number from 1 to ${MAX_PAGE_LIMIT}`);
    }
    const fromId = tokenRaw === undefined ? undefined : decodeToken(tokenRaw, symbol);
    const page = src.history.page(sym, { fromId, startMs, endMs, limit });
    const tape = TAPE_OF[src.instruments[sym].exchange];
    const body: TradesPage = {
      trades: page.trades.map((t) => restTrade({ ...t, tape })),
      symbol,
      next_page_token: page.nextId === null ? null : encodeToken(symbol, page.nextId),
    };
    res.json(body);
  });

  app.use((_req: Request, res: Response) => sendError(res, 404, 40410000, "endpoint not found"));

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof BadRequest) return sendError(res, 400, 40010001, err.message);
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
