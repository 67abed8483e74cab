// Prints the top price stock of each 5-minute tumbling window as tickgraph publishes it.
//
//   TICKGRAPH_TOKEN=$(npx tickgraph token --sub alice --roles USER) node examples/subscribe-top-price.mjs
//
// Options (environment): TICKGRAPH_WS (default ws://localhost:4000/graphql), TOP_LIMIT (default 1),
// TOP_BY (MEAN, VWAP, HIGH or CLOSE; default MEAN). Ctrl-C stops it.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const url = process.env.TICKGRAPH_WS ?? "ws://localhost:4000/graphql";
const token = process.env.TICKGRAPH_TOKEN;
if (!token) {
  console.error("Set TICKGRAPH_TOKEN (npx tickgraph token --sub alice --roles USER).");
  process.exit(2);
}

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  // The token travels in the connection_init message; a refused one closes the socket with 4403.
  connectionParams: { authorization: `Bearer ${token}` },
  // graphql-ws would retry a 4403; a refused token stays refused.
  shouldRetry: (e) => e?.code !== 4403,
  on: { closed: (e) => e?.code && e.code !== 1000 && console.error(`closed: ${e.code} ${e.reason}`) },
});

const query = `subscription TopPrice($limit: Int!, $by: RankBy!) {
  topPriceStock(limit: $limit, by: $by) { windowStart windowEnd delayed entries { rank symbol value } }
}`;

const stop = client.subscribe(
  { query, variables: { limit: Number(process.env.TOP_LIMIT ?? 1), by: process.env.TOP_BY ?? "MEAN" } },
  {
    next({ data, errors }) {
      if (errors) console.error(errors.map((e) => `${e.extensions?.code}: ${e.message}`).join("\n"));
      const r = data?.topPriceStock;
      if (!r) return;
      const top = r.entries.map((e) => `${e.rank}. ${e.symbol} ${e.value.toFixed(2)}`).join("  ");
      console.log(`${r.windowStart} – ${r.windowEnd}${r.delayed ? " (delayed)" : ""}  ${top}`);
    },
    error(err) {
      console.error(Array.isArray(err) ? err.map((e) => e.message).join("\n") : String(err?.reason ?? err));
      process.exitCode = 1;
      client.dispose();
    },
    complete() {
      client.dispose();
    },
  },
);

process.on("SIGINT", () => {
  stop();
  client.dispose();
});
