import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Page, WebSocketRoute } from "playwright-core";
import { Role } from "../../src/policy/principal";
import {
  browserAvailable,
  launchBrowser,
  SKIPPED_WITHOUT_CHROMIUM,
  until,
  watch,
  type Browser,
} from "../support/browser";
import { grantEntitlements } from "../support/governance";
import { startTestPlatform, type TestPlatform } from "../support/server";

// The dashboard in headless Chromium against the whole platform at --feed-speed 60 (a market hour per
// wall minute, so a one-minute window hops every 1/6 s and a 5-minute tumbling window closes every 5 s).
const DELAY_MS = 60_000;
/** A few seconds each on an idle machine; the margin is for a machine busy with other test runs. */
const TEST_MS = 90_000;
const ARTIFACTS = join(__dirname, "../../test-artifacts");
/** The browser's time zone: half an hour off any whole-hour zone, so that a time shown in UTC is caught. */
const ZONE = "Asia/Kolkata";
const MINUTE = 60_000;
const available = browserAvailable();
const run = available ? describe : describe.skip;

run(`the web pages in Chromium${available ? "" : ` ${SKIPPED_WITHOUT_CHROMIUM}`}`, () => {
  let t: TestPlatform;
  let browser: Browser;
  let origin: string;

  beforeAll(async () => {
    t = await startTestPlatform(
      { INGEST: "on", DELAY_SECONDS: String(DELAY_MS / 1000) },
      { feed: { seed: 5, symbols: 8, rate: 1000, speed: 60, start: "2026-01-05T14:29:00Z" } },
    );
    await grantEntitlements(t, "alice");
    origin = new URL(t.url).origin;
    browser = await launchBrowser({ timezoneId: ZONE });
    mkdirSync(ARTIFACTS, { recursive: true });
  }, TEST_MS);
  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  const attr = (page: Page, selector: string, name: string) => page.locator(selector).getAttribute(name);

  /** Waits until the attribute is set, then until it changes to a later value (a later window or board). */
  async function updates(page: Page, selector: string, name: string): Promise<[string, string]> {
    const first = await until(
      `${selector} ${name}`,
      async () => (await attr(page, selector, name)) ?? undefined,
    );
    const later = await until(`a later ${selector} ${name} than ${first}`, async () => {
      const v = await attr(page, selector, name);
      return v && v > first ? v : undefined;
    });
    return [first, later];
  }

  /** Every request the page made went to this server: nothing from a CDN or anywhere else. */
  function expectAllLocal(urls: string[]): void {
    expect(urls.length).toBeGreaterThan(0);
    const wsOrigin = origin.replace(/^http/, "ws");
    expect(urls.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith(`${wsOrigin}/`))).toEqual([]);
  }

  /** A time as the page shows it: in the browser's zone. */
  const asShown = (iso: string) =>
    new Intl.DateTimeFormat("en-GB", {
      timeZone: ZONE,
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    }).format(new Date(iso));

  /** The one-minute windows the chart holds, first to last. */
  async function span(page: Page): Promise<number> {
    const first = await attr(page, "#series", "data-first");
    const latest = await attr(page, "#series", "data-latest");
    return first && latest ? Date.parse(latest) - Date.parse(first) : 0;
  }

  /** Whether the page is still the document it was (a reload would have dropped the mark). */
  const mark = (page: Page) => page.evaluate(() => ((globalThis as { mark?: number }).mark = 1));
  const marked = (page: Page) => page.evaluate(() => (globalThis as { mark?: number }).mark);

  /** The little of the DOM the tests touch in the page (the tests' TypeScript has no DOM types). */
  interface HTMLLike {
    click(): void;
    dataset: Record<string, string | undefined>;
    querySelectorAll(s: string): { length: number };
  }

  interface ConnState {
    state: string;
    text: string;
    attempt?: string;
    waitMs?: string;
  }
  /**
   * Records every state the connection badge goes through, from the page's first script on, so that a
   * test reads the sequence afterwards instead of racing to see a passing state.
   */
  async function recordStates(page: Page): Promise<() => Promise<ConnState[]>> {
    await page.addInitScript(`
      const states = (window.states = []);
      new MutationObserver(() => {
        const c = document.getElementById("conn");
        if (!c || !c.dataset.state || states.at(-1)?.text === c.textContent) return;
        states.push({ ...c.dataset, text: c.textContent });
      }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
    `);
    return () => page.evaluate(() => (globalThis as unknown as { states: ConnState[] }).states);
  }

  test(
    "a real-time user's dashboard fills and keeps updating from live data",
    async () => {
      const page = await browser.context.newPage();
      const seen = watch(page);
      await page.goto(`${origin}/#token=${await t.token("alice")}`);
      // The token leaves the address bar and is kept for the other pages.
      expect(new URL(page.url()).hash).toBe("");
      await page.waitForSelector('#conn[data-state="live"]');
      expect(await page.locator("#who").textContent()).toContain("alice");

      const [seriesFirst, seriesLater] = await updates(page, "#series", "data-latest");
      expect(Date.parse(seriesLater)).toBeGreaterThan(Date.parse(seriesFirst));
      expect(Number(await attr(page, "#series", "data-points"))).toBeGreaterThan(1);
      await updates(page, "#movers", "data-as-of");
      expect(Number(await attr(page, "#movers", "data-bars"))).toBeGreaterThan(0);
      await updates(page, "#heatmap", "data-latest");
      // Every symbol has a window of each of the three sizes.
      await until("a full heatmap", async () =>
        (await attr(page, "#heatmap", "data-cells")) === String(8 * 3) ? true : undefined,
      );
      await updates(page, "#top3", "data-window-end");
      await updates(page, "#top-price", "data-window-end");

      // What the page shows is what the API says for that window: read in one go, the page being live.
      const { end, shown, asOf } = await page.evaluate<{
        end: string | null;
        shown: string[];
        asOf: string;
      }>(`(() => {
        const top3 = document.querySelector("#top3");
        return {
          end: top3.getAttribute("data-window-end"),
          shown: [...top3.querySelectorAll("ol li strong")].map((e) => e.textContent),
          asOf: top3.querySelector(".asof").textContent,
        };
      })()`);
      const { body } = await t.gql(
        `query($at: DateTime!) { topSymbols(size: ONE_MINUTE, at: $at) { windowEnd entries { symbol } } }`,
        { token: await t.token("alice"), variables: { at: end } },
      );
      expect(body.data.topSymbols.windowEnd).toBe(end);
      expect(shown).toEqual(body.data.topSymbols.entries.map((e: { symbol: string }) => e.symbol));

      // Times are the browser's, and the page says which zone that is.
      // (Chromium names the zone by its older alias.)
      expect(await page.locator("#tz").textContent()).toMatch(
        /^times in Asia\/(Kolkata|Calcutta) \(UTC\+5:30\)$/,
      );
      expect(asOf).toBe(`window ending ${asShown(end!)}`);

      // By default the chart plots each symbol's % change, on one axis; the URL names the whole view.
      expect(await attr(page, "#series", "data-chart")).toBe("change");
      expect(await attr(page, "#series", "data-axes")).toBe("1");
      expect(await page.locator("#relative").isChecked()).toBe(true);
      const url = new URL(page.url());
      expect(Object.fromEntries(url.searchParams)).toEqual({
        symbols: await page
          .locator("#symbols")
          .inputValue()
          .then((v) => v.replace(/, /g, ",")),
        chart: "change",
        range: "1h",
        movers: "window",
      });

      expect(await page.locator("#delayed").isHidden()).toBe(true);
      expect(await page.locator("body").getAttribute("data-delayed")).toBe("false");
      expect(await page.locator("#errors").isHidden()).toBe(true);
      expect(seen.errors).toEqual([]);
      expectAllLocal(seen.urls);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
      await page.close();
    },
    TEST_MS,
  );

  test(
    "a user without REALTIME sees the delayed badge, and no data younger than the delay",
    async () => {
      const page = await browser.context.newPage();
      const seen = watch(page);
      await page.goto(`${origin}/#token=${await t.token("bob")}`);
      await page.waitForSelector("#delayed:not([hidden])");
      expect(await page.locator("body").getAttribute("data-delayed")).toBe("true");
      expect(await page.locator("#who").textContent()).toContain("no entitlements");
      const latest = await until("a delayed window on the chart", async () => {
        const v = await attr(page, "#series", "data-latest");
        return v ?? undefined;
      });
      expect(Date.parse(latest)).toBeLessThanOrEqual(t.platform.ingest!.clock.now().getTime() - DELAY_MS);
      expect(seen.errors).toEqual([]);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-delayed.png"), fullPage: true });
      await page.close();
    },
    TEST_MS,
  );

  test(
    "a refused token is named as such, and another is asked for",
    async () => {
      const page = await browser.context.newPage();
      await page.goto(`${origin}/#token=not-a-token`);
      await page.waitForSelector("#login");
      expect(await page.locator("#login .error").textContent()).toContain("refused");
      expect(await attr(page, "#login", "data-cause")).toBe("401");
      await page.close();
    },
    TEST_MS,
  );

  test(
    "the % change toggle applies at once and keeps the URL in step; off, each symbol has its own scale",
    async () => {
      const page = await browser.context.newPage();
      await page.goto(`${origin}/?symbols=AAPL,MSFT,TSLA&range=1h#token=${await t.token("alice")}`);
      await until("points on the chart", async () =>
        Number(await attr(page, "#series", "data-points")) > 3 ? true : undefined,
      );
      await mark(page);
      await page.locator("#relative").uncheck();
      // No Show, no reload: the chart and the address change at once.
      expect(await attr(page, "#series", "data-chart")).toBe("price");
      expect(new URL(page.url()).searchParams.get("chart")).toBe("price");
      await until("a strip per symbol", async () =>
        (await attr(page, "#series", "data-axes")) === "3" ? true : undefined,
      );
      expect(await page.locator("#series h2 small").textContent()).toContain("one scale per symbol");
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-price.png"), fullPage: true });

      // The link reproduces the view.
      const link = page.url();
      const other = await browser.context.newPage();
      await other.goto(link);
      await until("the linked view", async () =>
        (await attr(other, "#series", "data-axes")) === "3" ? true : undefined,
      );
      expect(await other.locator("#relative").isChecked()).toBe(false);
      expect(await other.locator("#symbols").inputValue()).toBe("AAPL, MSFT, TSLA");
      await other.close();

      await page.locator("#relative").check();
      expect(await attr(page, "#series", "data-chart")).toBe("change");
      await until("one axis again", async () =>
        (await attr(page, "#series", "data-axes")) === "1" ? true : undefined,
      );
      expect(new URL(page.url()).searchParams.get("chart")).toBe("change");
      expect(await marked(page)).toBe(1);
      await page.close();
    },
    TEST_MS,
  );

  test(
    "a time range loads by cursor, page after page, and the chart zooms",
    async () => {
      const page = await browser.context.newPage();
      const ranges: { after: string | null }[] = [];
      page.on("request", (r) => {
        const body =
          r.method() === "POST" ? (r.postDataJSON() as { query?: string; variables?: never }) : null;
        if (body?.query?.includes("query Range")) ranges.push(body.variables as never);
      });
      // Eight symbols: more than a page (1,000 windows) after 21 market minutes.
      const { body } = await t.gql(`{ instruments { symbol } }`);
      const all = body.data.instruments.map((i: { symbol: string }) => i.symbol).join(",");
      await page.goto(`${origin}/?symbols=${all}&range=1h#token=${await t.token("alice")}`);
      await until(
        "22 market minutes on the chart",
        async () => ((await span(page)) > 22 * MINUTE ? true : undefined),
        90_000,
      );

      await page.selectOption("#range", "15m");
      expect(new URL(page.url()).searchParams.get("range")).toBe("15m");
      await until("a chart of 15 minutes", async () => {
        const s = await span(page);
        return (await attr(page, "#series", "data-loading")) === "false" && s > 0 && s <= 15 * MINUTE
          ? s
          : undefined;
      });
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-range-15m.png"), fullPage: true });

      // Back to an hour: the windows the 15-minute view dropped come back from the API, page by page.
      ranges.length = 0;
      await page.selectOption("#range", "1h");
      await until("the hour loaded", async () =>
        (await attr(page, "#series", "data-loading")) === "false" && (await span(page)) > 22 * MINUTE
          ? true
          : undefined,
      );
      expect(Number(await attr(page, "#series", "data-pages"))).toBeGreaterThan(1);
      expect(ranges.length).toBeGreaterThan(1);
      expect(ranges[0].after).toBeNull();
      expect(typeof ranges[1].after).toBe("string");

      // Scrolling over the chart zooms in; "reset zoom" shows it all again.
      const box = (await page.locator("#series .chart").boundingBox())!;
      await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.4);
      await until("a zoomed chart", async () => {
        await page.mouse.wheel(0, -400);
        const [start, end] = [
          Number(await attr(page, "#series", "data-zoom-start")),
          Number(await attr(page, "#series", "data-zoom-end")),
        ];
        return end - start < 60 ? true : undefined;
      });
      expect(await page.locator("#zoom-reset").isVisible()).toBe(true);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-zoomed.png"), fullPage: true });
      await page.click("#zoom-reset");
      expect(await attr(page, "#series", "data-zoom-start")).toBe("0.0");
      expect(await attr(page, "#series", "data-zoom-end")).toBe("100.0");
      await page.close();
    },
    TEST_MS * 2,
  );

  test(
    "when the token expires, the page asks for a new one and resumes without a reload",
    async () => {
      const page = await browser.context.newPage();
      const states = await recordStates(page);
      // No token kept: the page asks for one first, so that the short-lived one is minted just before use.
      await page.addInitScript(`localStorage.removeItem("tickgraph.token")`);
      await page.goto(`${origin}/`);
      await page.waitForSelector("#login");
      await mark(page);
      await page.fill("#token-input", await t.token("alice", [Role.USER], 8));
      await page.click("#login button[type=submit]");

      // The server closes the connection when the token expires (4403); waited for as such, however long.
      await page.waitForSelector('#login[data-cause="4403"]', { timeout: TEST_MS - 20_000 });
      expect(await page.locator("#login .error").textContent()).toContain("4403 Forbidden: token expired");
      expect(await page.locator("#conn").textContent()).toBe("closed: 4403 Forbidden: token expired");
      const seq = (await states()).map((s) => s.state);
      expect(seq.slice(seq.indexOf("live"))).toEqual(["live", "closed"]);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-token-expired.png"), fullPage: true });

      const before = (await attr(page, "#series", "data-latest")) ?? "";
      await page.fill("#token-input", await t.token("alice"));
      await page.click("#login button[type=submit]");
      await page.waitForSelector('#conn[data-state="live"]');
      await until("a window after the new token", async () => {
        const v = await attr(page, "#series", "data-latest");
        return v && v > before ? v : undefined;
      });
      expect(await page.locator("#login").count()).toBe(0);
      expect(await marked(page)).toBe(1);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-token-renewed.png"), fullPage: true });
      await page.close();
    },
    TEST_MS,
  );

  test(
    "any other close reconnects after a capped, jittered backoff shown on the page, and the gap is filled",
    async () => {
      const page = await browser.context.newPage();
      const states = await recordStates(page);
      // The real server behind a route the test can cut, and refuse new connections at.
      const open: WebSocketRoute[] = [];
      let refusing = false;
      let refused = 0;
      await page.routeWebSocket(/\/graphql$/, (ws) => {
        if (refusing) {
          refused++;
          void ws.close({ code: 1013, reason: "Try Again Later" });
          return;
        }
        ws.connectToServer();
        open.push(ws);
      });
      await page.goto(`${origin}/?symbols=AAPL,MSFT,TSLA&range=1h#token=${await t.token("alice")}`);
      await page.waitForSelector('#conn[data-state="live"]');
      await until("points on the chart", async () =>
        Number(await attr(page, "#series", "data-points")) > 3 ? true : undefined,
      );
      await mark(page);

      // 1011 is a close graphql-ws gives up on by itself; the dashboard does not.
      refusing = true;
      const recorded = (await states()).length;
      await open.at(-1)!.close({ code: 1011, reason: "Internal Error" });
      const cutAt = Date.parse((await attr(page, "#series", "data-latest"))!);
      await page.waitForSelector('#conn[data-state="reconnecting"]');
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-reconnecting.png") });
      // Refused twice, and until the market has moved on by three windows, which the page misses live.
      await until("two refusals and windows the page missed", async () => {
        if (refused < 2) return undefined;
        const { body } = await t.gql(
          `{ windowAggregates(size: ONE_MINUTE, symbols: ["AAPL"], first: 1) { nodes { windowEnd } } }`,
        );
        const end = body.data?.windowAggregates.nodes[0]?.windowEnd;
        return end && Date.parse(end) >= cutAt + 30_000 ? true : undefined;
      });
      refusing = false;
      const after = await until("live again", async () => {
        const s = (await states()).slice(recorded);
        return s.at(-1)?.state === "live" ? s : undefined;
      });
      const waits = after.filter((s) => s.state === "reconnecting");
      expect(waits.length).toBeGreaterThanOrEqual(2);
      expect(waits.map((s) => Number(s.attempt))).toEqual(waits.map((_, i) => i + 1));
      // Each wait is half its doubling ceiling (1 s, 2 s, 4 s…) plus a random share of the other half.
      waits.forEach((s, i) => {
        const ceiling = Math.min(30_000, 1000 * 2 ** i);
        expect(Number(s.waitMs)).toBeGreaterThanOrEqual(ceiling / 2);
        expect(Number(s.waitMs)).toBeLessThanOrEqual(ceiling);
      });
      expect(waits[0].text).toMatch(/^reconnecting: 1011 Internal Error; retry 1 in \d\.\d s$/);

      // Back live, the page fetched the windows it missed: no symbol's line has a hole.
      await until("live windows after the outage, and no hole", async () => {
        const latest = Date.parse((await attr(page, "#series", "data-latest")) ?? "");
        return latest > cutAt + 30_000 &&
          (await attr(page, "#series", "data-loading")) === "false" &&
          (await attr(page, "#series", "data-gaps")) === "0"
          ? true
          : undefined;
      });
      expect(await marked(page)).toBe(1);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-reconnected.png"), fullPage: true });
      await page.close();
    },
    TEST_MS,
  );

  test(
    "session movers without a previous session say why, rather than an empty chart",
    async () => {
      const page = await browser.context.newPage();
      await page.goto(`${origin}/?movers=session#token=${await t.token("alice")}`);
      await page.waitForSelector("#movers .empty:not([hidden])");
      expect(await page.locator("#movers .empty").textContent()).toContain("No previous session's close yet");
      expect(await attr(page, "#movers", "data-bars")).toBe("0");
      expect(await page.locator("#movers-basis").inputValue()).toBe("session");
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-session-empty.png"), fullPage: true });

      await page.selectOption("#movers-basis", "window");
      expect(new URL(page.url()).searchParams.get("movers")).toBe("window");
      await until("window movers", async () =>
        Number(await attr(page, "#movers", "data-bars")) > 0 ? true : undefined,
      );
      expect(await page.locator("#movers .empty").isHidden()).toBe(true);
      await page.close();
    },
    TEST_MS,
  );

  test(
    "session movers, once a session has closed, are a chart",
    async () => {
      // A market that crosses midnight UTC two market minutes (two wall seconds) after it starts.
      const late = await startTestPlatform(
        { INGEST: "on", DELAY_SECONDS: "0" },
        { feed: { seed: 7, symbols: 6, rate: 600, speed: 60, start: "2026-01-05T23:58:00Z" } },
      );
      try {
        const page = await browser.context.newPage();
        await page.goto(`${new URL(late.url).origin}/?movers=session#token=${await late.token("alice")}`);
        await until("session movers", async () =>
          Number(await attr(page, "#movers", "data-bars")) > 0 ? true : undefined,
        );
        expect(await page.locator("#movers .empty").isHidden()).toBe(true);
        expect(await page.locator("#movers .asof").textContent()).toMatch(
          /^previous session's close → price at /,
        );
        await page.screenshot({ path: join(ARTIFACTS, "dashboard-session.png"), fullPage: true });
        await page.close();
      } finally {
        await late.close();
      }
    },
    TEST_MS,
  );

  test(
    "the explorer runs operations offline with the token entered once",
    async () => {
      const page = await browser.context.newPage();
      const seen = watch(page);
      await page.goto(`${origin}/#token=${await t.token("alice")}`);
      await page.waitForSelector('#conn[data-state="live"]');
      // No token in this URL: the explorer uses the one the dashboard kept.
      await page.goto(`${origin}/explorer`);
      // The editors load after the page (CodeMirror comes in chunks): run once the query is in its editor.
      await page.waitForSelector(".graphiql-query-editor .CodeMirror", { timeout: 30_000 });
      await until("the query in the editor", async () =>
        (await page.locator(".graphiql-query-editor .CodeMirror").textContent())?.includes("LatestWindows")
          ? true
          : undefined,
      );
      await page.click(".graphiql-execute-button");
      await until("the explorer's result", async () => {
        const text = await page.locator(".result-window").textContent();
        return text?.includes('"id": "alice"') ? text : undefined;
      });
      expect(seen.errors).toEqual([]);
      expectAllLocal(seen.urls);
      await page.close();
    },
    TEST_MS,
  );

  test(
    "the explorer takes its token from the link and lists a subscription's events, newest first",
    async () => {
      const page = await browser.context.newPage();
      const seen = watch(page);
      // Another principal than the one the browser kept: the link's token wins, and leaves the address bar.
      await page.goto(`${origin}/explorer#token=${await t.token("bob")}`);
      await until("bob signed in", async () =>
        (await page.locator("#who").textContent())?.startsWith("bob") ? true : undefined,
      );
      expect(new URL(page.url()).hash).toBe("");
      const editor = page.locator(".graphiql-query-editor .CodeMirror");
      await editor.waitFor({ timeout: 30_000 });
      await until("the example in the editor", async () =>
        (await editor.textContent())?.includes("LatestWindows") ? true : undefined,
      );
      await page.evaluate((q) => {
        const cm = (
          globalThis as unknown as { document: { querySelector(s: string): unknown } }
        ).document.querySelector(".graphiql-query-editor .CodeMirror") as {
          CodeMirror: { setValue(v: string): void };
        };
        cm.CodeMirror.setValue(q);
      }, "subscription Top3 { topSymbols(size: ONE_MINUTE, limit: 3) { windowEnd entries { symbol } delayed } }");
      // GraphiQL takes the operation's name from the editor a moment later; its tab shows it then.
      await until("the subscription named in its tab", async () =>
        (await page.locator(".graphiql-tabs").textContent())?.includes("Top3") ? true : undefined,
      );
      await page.click(".graphiql-execute-button");

      const count = async () => Number(await attr(page, "#events", "data-count"));
      await until("three events", async () => ((await count()) >= 3 ? true : undefined));
      expect(await page.locator("#events .operation").textContent()).toBe("Top3");
      const items = page.locator("#events li");
      const ns = (await items.evaluateAll((lis) => lis.map((li) => Number(li.getAttribute("data-n"))))).slice(
        0,
        3,
      );
      expect(ns).toEqual([...ns].sort((a, b) => b - a));
      const ends = (await page.locator("#events li pre").allTextContents())
        .slice(0, 3)
        .map(
          (p) => (JSON.parse(p) as { data: { topSymbols: { windowEnd: string } } }).data.topSymbols.windowEnd,
        );
      expect(ends).toEqual([...ends].sort().reverse());
      expect(await page.locator("#events .count").textContent()).toMatch(/^\d+ events$/);
      await page.screenshot({ path: join(ARTIFACTS, "explorer-events.png") });

      // Clearing empties the list and restarts the count (read in the same turn as the click, before any
      // other event can come); the subscription goes on filling it.
      const cleared = await page.evaluate(() => {
        const d = (globalThis as unknown as { document: { getElementById(id: string): HTMLLike } }).document;
        d.getElementById("clear-events").click();
        const events = d.getElementById("events");
        return [events.dataset.count, events.querySelectorAll("li").length];
      });
      expect(cleared).toEqual(["0", 0]);
      await until("events again after clearing", async () => ((await count()) >= 2 ? true : undefined));
      const after = await items.evaluateAll((lis) => lis.map((li) => Number(li.getAttribute("data-n"))));
      expect(after.at(-1)).toBe(1);
      expect(after[0]).toBe(after.length);
      expect(seen.errors).toEqual([]);
      await page.close();
    },
    TEST_MS,
  );

  test(
    "a steward reads, filters and tails the access log and verifies its chain",
    async () => {
      const page = await browser.context.newPage();
      const seen = watch(page);
      await page.goto(`${origin}/access-log#token=${await t.token("sam", [Role.STEWARD])}`);
      await page.waitForSelector(".integrity.ok");
      expect(await page.locator("#integrity").textContent()).toMatch(/intact: \d+ entries checked/);
      await until("log rows", async () =>
        Number(await attr(page, "#log", "data-rows")) > 0 ? true : undefined,
      );

      // Filtered to one principal and decision, then tailing live: a new operation of that principal appears.
      await page.fill("#principal", "zed");
      await page.selectOption("#decision", "PARTIAL");
      await page.click("#filters button[type=submit]");
      await until("the filtered (empty) log", async () =>
        (await attr(page, "#log", "data-rows")) === "0" ? true : undefined,
      );
      await page.waitForSelector('#conn[data-state="live"]');
      const zed = await t.token("zed");
      await t.gql(`{ me { id } }`, { token: zed }); // ALLOWED: filtered out
      await t.gql(`{ me { id } accessLog(first: 1) { nodes { seq } } }`, { token: zed }); // PARTIAL
      await until("zed's PARTIAL entry, live", async () =>
        (await attr(page, "#log", "data-rows")) === "1" ? true : undefined,
      );
      expect(await page.locator("#log tbody tr").first().getAttribute("data-decision")).toBe("PARTIAL");
      expect(await page.locator("#log tbody tr td").nth(2).textContent()).toBe("zed");
      expect(seen.errors).toEqual([]);
      expectAllLocal(seen.urls);
      await page.close();
    },
    TEST_MS,
  );

  test(
    "a user who is no steward sees the access log refused, not a broken page",
    async () => {
      const page = await browser.context.newPage();
      await page.goto(`${origin}/access-log#token=${await t.token("alice")}`);
      await page.waitForSelector('#errors li[data-code="FORBIDDEN"]');
      expect(await attr(page, "#log", "data-rows")).toBe("0");
      await page.close();
    },
    TEST_MS,
  );
});
