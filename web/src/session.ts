import { createClient, type Client, type ExecutionResult } from "graphql-ws";
import { backoffMs, DEFAULT_BACKOFF, type Backoff } from "./backoff";

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

/** The token form: why the last token failed (if it did), how to get one, and where to paste it. */
function tokenForm(why?: string): { form: HTMLFormElement; read: () => string } {
  const input = el("textarea", { id: "token-input", rows: "4", placeholder: "eyJhbGciOi…" });
  const form = el(
    "form",
    { class: "login" },
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
  return { form, read: () => input.value.trim().replace(/^Bearer\s+/i, "") };
}

/** Shows the token form in place of the page and reloads once a token is entered. */
export function askForToken(why?: string): void {
  const { form, read } = tokenForm(why);
  form.id = "login";
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const token = read();
    if (!token) return;
    localStorage.setItem(TOKEN_KEY, token);
    location.reload();
  });
  document.querySelector("main")!.replaceChildren(form);
  document.getElementById("conn")!.hidden = true;
}

let prompting: Promise<string> | null = null;

/**
 * Asks for a token in a dialog over the page, which keeps its state (and its charts) behind it; resolves
 * with the token entered, kept for the other pages too. Callers that ask while the dialog is open share it.
 * `cause` (e.g. "4403", "401") is kept on the dialog as `data-cause`.
 */
export function promptForToken(why?: string, cause = ""): Promise<string> {
  prompting ??= new Promise<string>((resolve) => {
    const { form, read } = tokenForm(why);
    const dialog = el("dialog", { id: "login", "data-cause": cause }, form);
    // Escape would close the dialog and leave the page waiting for a token nobody is asked for.
    dialog.addEventListener("cancel", (e) => e.preventDefault());
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const token = read();
      if (!token) return;
      localStorage.setItem(TOKEN_KEY, token);
      dialog.close();
      dialog.remove();
      prompting = null;
      resolve(token);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
  return prompting;
}

async function post<T>(
  token: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<{ status: number; body: GqlResult<T> }> {
  const res = await fetch("/graphql", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, body: (await res.json()) as GqlResult<T> };
}

/** A GraphQL operation over HTTP POST, with the token. A 401 asks for another token (reloading the page). */
export async function gql<T>(
  token: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GqlResult<T>> {
  const { status, body } = await post<T>(token, query, variables);
  if (status === 401) {
    forgetToken();
    askForToken(`The token was refused: ${body.errors?.[0]?.message ?? "401"}`);
  }
  return body;
}

/**
 * The token of a page that stays up (a wallboard): when the server refuses it (expired, revoked key), the
 * page asks for another over itself and carries on with it, without a reload.
 */
export class Session {
  constructor(public token: string) {}

  /** Asks for a new token (`why` says what happened) and uses it from now on. */
  async renew(why: string, cause: string): Promise<string> {
    this.token = await promptForToken(why, cause);
    return this.token;
  }

  /** A GraphQL operation over HTTP POST; on a 401 it asks for a new token and runs again with it. */
  async gql<T>(query: string, variables?: Record<string, unknown>): Promise<GqlResult<T>> {
    for (;;) {
      const used = this.token;
      const { status, body } = await post<T>(used, query, variables);
      if (status !== 401) return body;
      // Another request may have renewed the token while this one was on its way.
      if (this.token === used)
        await this.renew(`The token was refused: ${body.errors?.[0]?.message ?? "401"}`, "401");
    }
  }
}

export type ConnectionState = "connecting" | "live" | "reconnecting" | "closed";

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
      closed: (event) => onState("closed", describeClose(event as CloseEvent | undefined) || undefined),
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

/** How a close reads: its code and reason, e.g. "4403 Forbidden: token expired". */
function describeClose(e: CloseEvent | undefined): string {
  return e?.code ? `${e.code}${e.reason ? ` ${e.reason}` : ""}` : "";
}

/** What `LiveLink` reports as its connection changes. */
export interface LinkState {
  state: ConnectionState;
  /** The close (code and reason) or the wait before the next attempt, for people. */
  detail?: string;
  /** Reconnect attempts since the connection was last up. */
  attempt?: number;
  /** How long until the next attempt. */
  waitMs?: number;
}

interface LinkSubscription {
  query: string;
  variables: Record<string, unknown>;
  onData: (data: never) => void;
  onErrors: (errors: readonly GqlError[]) => void;
  stop?: () => void;
}

/**
 * A graphql-ws connection for a page that stays up all day. A 4403 close (the token expired or was
 * refused) asks for a new token and reconnects with it; any other close reconnects after a wait that
 * doubles up to a cap, with jitter (`backoffMs`). Its subscriptions are made again on each new connection,
 * and `onResumed` runs once it is up again, so that the page can fetch what it missed meanwhile.
 *
 * graphql-ws's own retries are off (`retryAttempts: 0`): it gives up for good on some closes (1011,
 * 4500…) and reconnects at once after others (1000), where a wallboard wants one rule for all.
 */
export class LiveLink {
  private client: Client | null = null;
  private readonly subscriptions = new Set<LinkSubscription>();
  private attempt = 0;
  private wasUp = false;

  constructor(
    private readonly session: Session,
    private readonly onState: (s: LinkState) => void,
    private readonly onResumed: () => void = () => {},
    private readonly backoff: Backoff = DEFAULT_BACKOFF,
  ) {
    this.connect();
  }

  /** Subscribes, now and on every later connection; returns the function that ends it. */
  subscribe<T>(
    query: string,
    variables: Record<string, unknown>,
    onData: (data: T) => void,
    onErrors: (errors: readonly GqlError[]) => void,
  ): () => void {
    const s: LinkSubscription = { query, variables, onData: onData as (data: never) => void, onErrors };
    this.subscriptions.add(s);
    if (this.client) this.attach(this.client, s);
    return () => {
      this.subscriptions.delete(s);
      s.stop?.();
    };
  }

  private attach(client: Client, s: LinkSubscription): void {
    s.stop = live(client, s.query, s.variables, s.onData, s.onErrors);
  }

  private connect(): void {
    const client = createClient({
      url: wsUrl(),
      connectionParams: () => ({ authorization: `Bearer ${this.session.token}` }),
      lazy: false,
      retryAttempts: 0,
      keepAlive: 15_000,
      onNonLazyError: () => {},
      on: {
        connecting: () => this.onState({ state: "connecting", attempt: this.attempt }),
        connected: () => {
          this.attempt = 0;
          this.onState({ state: "live" });
          if (this.wasUp) this.onResumed();
          this.wasUp = true;
        },
        closed: (event) => this.closed(client, event as CloseEvent | undefined),
      },
    });
    this.client = client;
    for (const s of this.subscriptions) this.attach(client, s);
  }

  private closed(client: Client, event: CloseEvent | undefined): void {
    if (client !== this.client) return;
    this.client = null;
    // Disposed before graphql-ws handles the close itself, so that it does not reconnect on its own.
    Promise.resolve(client.dispose()).catch(() => {});
    const detail = describeClose(event);
    if (event?.code === 4403) {
      this.onState({ state: "closed", detail });
      void this.session
        .renew(`The live connection closed: ${detail}. Enter a new token to resume.`, "4403")
        .then(() => this.connect());
      return;
    }
    const waitMs = backoffMs(++this.attempt, this.backoff);
    this.onState({
      state: "reconnecting",
      detail: `${detail || "connection lost"}; retry ${this.attempt} in ${(waitMs / 1000).toFixed(1)} s`,
      attempt: this.attempt,
      waitMs,
    });
    setTimeout(() => this.connect(), waitMs);
  }
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

  /** A `LiveLink`'s state, with its attempt and wait as data- attributes. */
  link(s: LinkState): void {
    this.connection(s.state, s.detail);
    this.state.dataset.attempt = String(s.attempt ?? 0);
    if (s.waitMs === undefined) delete this.state.dataset.waitMs;
    else this.state.dataset.waitMs = String(s.waitMs);
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
