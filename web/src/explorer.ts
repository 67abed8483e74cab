import "graphiql/style.css";
import "./style.css";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { createElement } from "react";
import { createRoot } from "react-dom/client";
import { askForToken, currentToken, Frame, gql, liveClient, type Me } from "./session";

const EXAMPLE = `# The token entered once is sent with every request (HTTP and WebSocket).
# Ctrl-Enter runs; subscriptions stream their events below.
query LatestWindows {
  me { id roles entitlements }
  topSymbols(size: ONE_MINUTE) { windowEnd entries { rank symbol value } delayed }
  windowAggregates(size: ONE_MINUTE, symbols: ["AAPL"], first: 5) {
    nodes { symbol windowEnd open high low close vwap delayed }
    pageInfo { hasNextPage endCursor }
  }
}
`;

async function main(): Promise<void> {
  const token = currentToken();
  if (!token) return askForToken();
  const frame = new Frame();
  const { data } = await gql<{ me: Me }>(token, `query Me { me { id roles entitlements } }`);
  if (!data) return;
  frame.signedIn(data.me);
  const fetcher = createGraphiQLFetcher({
    url: "/graphql",
    headers: { authorization: `Bearer ${token}` },
    wsClient: liveClient(token, (state, detail) => frame.connection(state, detail)),
  });
  createRoot(document.getElementById("graphiql")!).render(
    createElement(GraphiQL, { fetcher, defaultQuery: EXAMPLE, defaultEditorToolsVisibility: false }),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  new Frame().showErrors([{ message: String((err as Error)?.message ?? err) }]);
});
