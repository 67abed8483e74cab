import { createClient, type Client, type ExecutionResult } from "graphql-ws";

/** One GraphQL error as the server sends it. */
export interface GqlError {
  message: string;
  path?: readonly (string | number)[];
  extensions?: { code?: string; [k: string]: unknown };
}

export interface GqlResult<T> {
  data?: T | null;
  errors?: readonly GqlError[];
  extensions?: Record<string, unknown>;
}

const TOKEN_KEY = "tickgraph.token";

/**
 * The bearer token: taken from the URL fragment (`#token=…`, which `tickgraph serve` prints) and kept in
 * localStorage, so that it is entered once for every page of this origin. The fragment is removed from
 * the address bar and history right away.
 */
export function currentToken(): string | null {
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromUrl) {
    localStorage.setItem(TOKEN_KEY, fromUrl.trim());
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem(TOKEN_KEY);
}

export function forgetToken(): void {
  localStorage.removeItem(TOKEN_KEY);
}

const el = <K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
};
export { el };

/** Shows the token form in place of the page and reloads once a token is entered. */
export function askForToken(why?: string): void {
  const input = el("textarea", { id: "token-input", rows: "4", placeholder: "eyJhbGciOi…" });
  const form = el(
    "form",
    { id: "login", class: "login" },
    el("h2", {}, "Sign in with a token"),
    ...(why ? [el("p", { class: "error" }, why)] : []),
    el(
      "p",
      {},
      "Mint one with ",
      el("code", {}, "npx tickgraph token --sub alice --roles USER"),
      ", or open the link ",
      el("code", {}, "tickgraph serve"),
      " prints.",
    ),
    input,
    el("button", { type: "submit" }, "Use this token"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const token = input.value.trim().replace(/^Bearer\s+/i, "");
    if (!token) return;
    localStorage.setItem(TOKEN_KEY, token);
    location.reload();
  });
  document.querySelector("main")!.replaceChildren(form);
  document.getElementById("conn")!.hidden = true;
}

/** A GraphQL operation over HTTP POST, with the token. A 401 asks for another token. */
export async function gql<T>(
  token: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GqlResult<T>> {
  const res = await fetch("/graphql", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as GqlResult<T>;
  if (res.status === 401) {
    forgetToken();
    askForToken(`The token was refused: ${body.errors?.[0]?.message ?? res.statusText}`);
  }
  return body;
}

export type ConnectionState = "connecting" | "live" | "closed";

/** The WebSocket URL of this server's GraphQL endpoint. */
export const wsUrl = () => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;

/**
 * A graphql-ws client that reports its state (connecting, live, closed with the close code and reason,
 * e.g. 4403 for a refused or expired token) to `onState`. It reconnects after a dropped connection; a
 * refused token is final.
 */
export function liveClient(
  token: string,
  onState: (state: ConnectionState, detail?: string) => void,
): Client {
  return createClient({
    url: wsUrl(),
    connectionParams: { authorization: `Bearer ${token}` },
    lazy: false,
    retryAttempts: 20,
    keepAlive: 15_000,
    onNonLazyError: () => {},
    // graphql-ws retries a 4403 (access might be granted later); a refused or expired token will not be.
    shouldRetry: (e) => e instanceof CloseEvent && e.code !== 4403,
    on: {
      connecting: () => onState("connecting"),
      connected: () => onState("live"),
      closed: (event) => {
        const e = event as CloseEvent | undefined;
        onState("closed", e?.code ? `${e.code}${e.reason ? ` ${e.reason}` : ""}` : undefined);
      },
    },
  });
}

/**
 * Subscribes; each result's data goes to `onData`, its errors (e.g. FORBIDDEN for a field the principal
 * may not read, which arrives with the field null) to `onErrors`. Returns the unsubscribe function.
 */
export function live<T>(
  client: Client,
  query: string,
  variables: Record<string, unknown>,
  onData: (data: T) => void,
  onErrors: (errors: readonly GqlError[]) => void,
): () => void {
  return client.subscribe<T>(
    { query, variables },
    {
      next: (r: ExecutionResult<T, unknown>) => {
        if (r.errors?.length) onErrors(r.errors as readonly GqlError[]);
        if (r.data) onData(r.data as T);
      },
      error: (e) => {
        if (Array.isArray(e)) onErrors(e as GqlError[]);
        else if (e instanceof Error) onErrors([{ message: e.message }]);
        // A CloseEvent: the connection state shows it.
      },
      complete: () => {},
    },
  );
}

export interface Me {
  id: string;
  roles: string[];
  entitlements: string[];
}

/**
 * The page frame every page shares: navigation, who is signed in, the connection state, the delayed
 * badge and the errors the server sent. Elements carry data- attributes that tests read.
 */
export class Frame {
  private readonly state = document.getElementById("conn")!;
  private readonly delayed = document.getElementById("delayed")!;
  private readonly who = document.getElementById("who")!;
  private readonly errors = document.getElementById("errors")!;
  private readonly seen = new Map<string, HTMLLIElement>();

  constructor() {
    document.getElementById("sign-out")?.addEventListener("click", () => {
      forgetToken();
      location.reload();
    });
  }

  connection(state: ConnectionState, detail?: string): void {
    this.state.dataset.state = state;
    this.state.textContent = detail ? `${state}: ${detail}` : state;
  }

  /** Marks the data as delayed (the principal lacks REALTIME) or real time, as the last result said. */
  markDelayed(delayed: boolean): void {
    this.delayed.hidden = !delayed;
    document.body.dataset.delayed = String(delayed);
  }

  signedIn(me: Me): void {
    this.who.textContent = `${me.id} · ${me.roles.join(", ")}${
      me.entitlements.length ? ` · ${me.entitlements.join(", ")}` : " · no entitlements"
    }`;
  }

  /** Lists each distinct error once, with a count. */
  showErrors(errors: readonly GqlError[]): void {
    for (const e of errors) {
      const code = e.extensions?.code ?? "ERROR";
      const key = `${code} ${e.path?.join(".") ?? ""} ${e.message}`;
      let li = this.seen.get(key);
      if (!li) {
        li = el("li", { "data-code": String(code) });
        li.dataset.count = "0";
        this.seen.set(key, li);
        this.errors.append(li);
      }
      li.dataset.count = String(Number(li.dataset.count) + 1);
      li.textContent = `${code}: ${e.message}${Number(li.dataset.count) > 1 ? ` (×${li.dataset.count})` : ""}`;
    }
    this.errors.hidden = this.seen.size === 0;
  }
}

const PAGES: [string, string][] = [
  ["/", "Dashboard"],
  ["/access-log", "Access log"],
  ["/explorer", "Explorer"],
];

/**
 * The header every page shares (navigation, who is signed in, the delayed badge, the connection state)
 * and the error list under it, built here so that each page's HTML holds only its own parts.
 */
function renderHeader(): void {
  const header = document.querySelector("body > header");
  if (!header) return;
  const here = location.pathname.replace(/\/$/, "") || "/";
  const delayed = el(
    "span",
    {
      id: "delayed",
      class: "badge delayed",
      title: "Without the REALTIME entitlement, data is served DELAY_SECONDS late",
    },
    "delayed",
  );
  delayed.hidden = true;
  header.replaceChildren(
    el("a", { class: "brand", href: "/" }, "tickgraph"),
    el(
      "nav",
      {},
      ...PAGES.map(([href, name]) =>
        el("a", href === here ? { href, "aria-current": "page" } : { href }, name),
      ),
    ),
    el("span", { id: "who", class: "who" }),
    delayed,
    el("span", { id: "conn", class: "conn", "data-state": "connecting" }, "connecting"),
    el("button", { id: "sign-out", type: "button", class: "link" }, "change token"),
  );
  const errors = el("ul", { id: "errors", class: "errors" });
  errors.hidden = true;
  header.after(errors);
}
renderHeader();
