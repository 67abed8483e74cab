import "graphiql/style.css";
import "./style.css";
import { createGraphiQLFetcher, isAsyncIterable, type Fetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { Kind, type DocumentNode } from "graphql";
import { createElement } from "react";
import { createRoot } from "react-dom/client";
import { askForToken, currentToken, el, Frame, gql, liveClient, type Me } from "./session";

const EXAMPLE = `# The token entered once is sent with every request (HTTP and WebSocket).
# Ctrl-Enter runs; a subscription's events are listed under the editors, newest first.
query LatestWindows {
  me { id roles entitlements }
  topSymbols(size: ONE_MINUTE) { windowEnd entries { rank symbol value } delayed }
  windowAggregates(size: ONE_MINUTE, symbols: ["AAPL"], first: 5) {
    nodes { symbol windowEnd open high low close vwap delayed }
    pageInfo { hasNextPage endCursor }
  }
}
`;

/** Events kept on the page; older ones leave the list (the count still counts them). */
const EVENTS_KEPT = 500;

const time = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  fractionalSecondDigits: 3,
  hourCycle: "h23",
});

/** The list of a running subscription's events, newest first, with their count and a clear button. */
class EventList {
  private readonly section = document.getElementById("events")!;
  private readonly list = this.section.querySelector("ol")!;
  private readonly count = this.section.querySelector(".count")!;
  private received = 0;

  constructor() {
    document.getElementById("clear-events")!.addEventListener("click", () => this.clear());
  }

  /** A new run: the list is for that operation's events only. */
  start(operation: string): void {
    this.clear();
    this.section.querySelector(".operation")!.textContent = operation;
    this.section.hidden = false;
  }

  add(result: unknown): void {
    this.received++;
    const item = el(
      "li",
      { "data-n": String(this.received) },
      el("span", { class: "n" }, `#${this.received}`),
      el("time", {}, time.format(new Date())),
      el("pre", {}, JSON.stringify(result)),
    );
    this.list.prepend(item);
    while (this.list.children.length > EVENTS_KEPT) this.list.lastElementChild!.remove();
    this.counted();
  }

  clear(): void {
    this.received = 0;
    this.list.replaceChildren();
    this.counted();
  }

  private counted(): void {
    const n = this.received;
    this.section.dataset.count = String(n);
    this.count.textContent = `${n} event${n === 1 ? "" : "s"}${n > EVENTS_KEPT ? `, newest ${EVENTS_KEPT} shown` : ""}`;
  }
}

/** The operation GraphiQL runs, when it is a subscription: its name, or "" when it has none. */
function subscriptionName(doc: DocumentNode | undefined, name: string | null | undefined): string | null {
  for (const d of doc?.definitions ?? [])
    if (d.kind === Kind.OPERATION_DEFINITION && (d.name?.value ?? null) === (name || null))
      return d.operation === "subscription" ? (d.name?.value ?? "") : null;
  return null;
}

/**
 * Calls `onEach` with each value `source` yields. Written out rather than as an async generator, so that
 * stopping the subscription in GraphiQL (`return`) reaches the source at once, not at its next event.
 */
function tap<T>(source: AsyncIterable<T>, onEach: (value: T) => void): AsyncIterableIterator<T> {
  const it = source[Symbol.asyncIterator]();
  return {
    async next() {
      const r = await it.next();
      if (!r.done) onEach(r.value);
      return r;
    },
    return: (value?: unknown) => it.return?.(value) ?? Promise.resolve({ done: true, value: undefined }),
    throw: (err?: unknown) => it.throw?.(err) ?? Promise.reject(err),
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

async function main(): Promise<void> {
  const token = currentToken();
  if (!token) return askForToken();
  const frame = new Frame();
  const { data } = await gql<{ me: Me }>(token, `query Me { me { id roles entitlements } }`);
  if (!data) return;
  frame.signedIn(data.me);
  const events = new EventList();
  const base = createGraphiQLFetcher({
    url: "/graphql",
    headers: { authorization: `Bearer ${token}` },
    wsClient: liveClient(token, (state, detail) => frame.connection(state, detail)),
  });
  const fetcher: Fetcher = async (params, opts) => {
    const name = subscriptionName(opts?.documentAST, params.operationName);
    const result = await base(params, opts);
    if (name === null || !isAsyncIterable(result)) return result;
    events.start(name || "(anonymous subscription)");
    return tap(result, (r) => events.add(r));
  };
  createRoot(document.getElementById("graphiql")!).render(
    createElement(GraphiQL, { fetcher, defaultQuery: EXAMPLE, defaultEditorToolsVisibility: false }),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  new Frame().showErrors([{ message: String((err as Error)?.message ?? err) }]);
});
