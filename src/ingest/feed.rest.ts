import {
  KEY_HEADER,
  SECRET_HEADER,
  type Asset,
  type RestTrade,
  type SnapshotsResponse,
  type TradesPage,
} from "../feed/protocol";

/** Symbols per snapshots request: keeps the URL far below common limits. */
const SNAPSHOT_CHUNK = 200;
/** The protocol's largest page. */
export const MAX_TRADES_PAGE = 10_000;

/** The REST half of an Alpaca-v2-style feed: reference data, snapshots and trade history for backfill. */
export class FeedRest {
  /** @param baseUrl e.g. `http://127.0.0.1:8765` (a trailing slash is ignored) */
  constructor(
    readonly baseUrl: string,
    private readonly key: string,
    private readonly secret: string,
    private readonly timeoutMs = 10_000,
  ) {}

  private async get<T>(path: string): Promise<T> {
    const res = await fetch(this.baseUrl.replace(/\/+$/, "") + path, {
      headers: { [KEY_HEADER]: this.key, [SECRET_HEADER]: this.secret },
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!res.ok)
      throw new Error(`feed REST ${path.split("?")[0]} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as T;
  }

  assets(): Promise<Asset[]> {
    return this.get<Asset[]>("/v2/assets");
  }

  /** The latest trade id and time of each symbol; symbols that never traded are left out. */
  async latest(symbols: string[]): Promise<Map<string, { id: number; timeMs: number }>> {
    const out = new Map<string, { id: number; timeMs: number }>();
    for (let k = 0; k < symbols.length; k += SNAPSHOT_CHUNK) {
      const chunk = symbols.slice(k, k + SNAPSHOT_CHUNK);
      const body = await this.get<SnapshotsResponse>(
        `/v2/stocks/snapshots?symbols=${chunk.map(encodeURIComponent).join(",")}`,
      );
      for (const [symbol, snap] of Object.entries(body)) {
        const t = snap.latestTrade;
        if (t && Number.isSafeInteger(t.i)) out.set(symbol, { id: t.i, timeMs: Date.parse(t.t) });
      }
    }
    return out;
  }

  /** One page of `symbol`'s trades at or after `startMs`, in id order. */
  trades(
    symbol: string,
    opts: { startMs?: number; pageToken?: string | null; limit?: number },
  ): Promise<TradesPage> {
    const q = new URLSearchParams({ limit: String(opts.limit ?? MAX_TRADES_PAGE) });
    if (opts.startMs !== undefined) q.set("start", new Date(Math.max(0, opts.startMs)).toISOString());
    if (opts.pageToken) q.set("page_token", opts.pageToken);
    return this.get<TradesPage>(`/v2/stocks/${encodeURIComponent(symbol)}/trades?${q.toString()}`);
  }
}

/** A REST trade in stream form, so that one validator judges both. */
export function streamTrade(symbol: string, t: RestTrade): Record<string, unknown> {
  return { T: "t", S: symbol, ...t };
}
