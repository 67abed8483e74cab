import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Pool } from "pg";
import { quotePageSql, type QuoteRow } from "../../src/db/market.repo";

// The yardstick: node:http + pg running the same SQL as the GraphQL server and answering the same JSON.
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 20 });

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", async () => {
    try {
      const { variables } = JSON.parse(Buffer.concat(chunks).toString()) as { variables: { s: string[] } };
      const { sql, params } = quotePageSql({ symbols: variables.s, order: "DESC", limit: 101 });
      const { rows } = await pool.query<QuoteRow>(sql, params);
      const nodes = rows.slice(0, 100).map((r) => ({
        symbol: r.symbol,
        eventTime: r.eventTime.toISOString(),
        price: r.price,
        size: r.size,
      }));
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ data: { quotes: { nodes } } }));
    } catch (err) {
      res.writeHead(500);
      res.end(String(err));
    }
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + "\n");
});
process.on("SIGTERM", () => server.close(() => void pool.end().then(() => process.exit(0))));
