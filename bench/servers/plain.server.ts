import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Pool } from "pg";
import { quotePageSql, type QuoteRow } from "../../src/db/market.repo";
import { WindowSize, type WindowRow } from "../../src/windows/windows";
import { windowPageSql } from "../../src/db/windows.repo";

// The yardstick: node:http + pg running the same SQL as the GraphQL server and answering the same JSON.
// It reads no GraphQL: the operation name says which page (Quotes or Windows), `s` the symbols and `n`
// the page size.
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 20 });

interface Body {
  operationName: "Quotes" | "Windows";
  variables: { s: string[]; n: number };
}

async function answer({ operationName, variables: { s, n } }: Body): Promise<unknown> {
  if (operationName === "Windows") {
    const { sql, params } = windowPageSql({
      size: WindowSize.ONE_MINUTE,
      symbols: s,
      order: "DESC",
      limit: n + 1,
      columns: ["symbol", "windowEnd", "open", "close", "volume"],
    });
    const { rows } = await pool.query<WindowRow>(sql, params);
    const nodes = rows.slice(0, n).map((r) => ({
      symbol: r.symbol,
      windowEnd: r.windowEnd.toISOString(),
      open: r.open,
      close: r.close,
      volume: r.volume,
    }));
    return { data: { windowAggregates: { nodes } } };
  }
  const { sql, params } = quotePageSql({
    symbols: s,
    order: "DESC",
    limit: n + 1,
    columns: ["symbol", "eventTime", "price", "size"],
  });
  const { rows } = await pool.query<QuoteRow>(sql, params);
  const nodes = rows.slice(0, n).map((r) => ({
    symbol: r.symbol,
    eventTime: r.eventTime,
    price: r.price,
    size: r.size,
  }));
  return { data: { quotes: { nodes } } };
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => void respond());
  async function respond() {
    try {
      const body = JSON.stringify(await answer(JSON.parse(Buffer.concat(chunks).toString()) as Body));
      res.writeHead(200, { "content-type": "application/json" });
      res.end(body);
    } catch (err) {
      res.writeHead(500);
      res.end(String(err));
    }
  }
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + "\n");
});
process.on("SIGTERM", () => server.close(() => void pool.end().then(() => process.exit(0))));
