import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
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
    browser = await launchBrowser();
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

      // What the page shows is what the API says for that window.
      const end = await attr(page, "#top3", "data-window-end");
      const shown = await page.locator("#top3 ol li strong").allTextContents();
      const { body } = await t.gql(
        `query($at: DateTime!) { topSymbols(size: ONE_MINUTE, at: $at) { windowEnd entries { symbol } } }`,
        { token: await t.token("alice"), variables: { at: end } },
      );
      expect(body.data.topSymbols.windowEnd).toBe(end);
      expect(shown).toEqual(body.data.topSymbols.entries.map((e: { symbol: string }) => e.symbol));

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
      await page.close();
    },
    TEST_MS,
  );

  test(
    "when the token expires, the page shows the connection closed with its reason",
    async () => {
      const page = await browser.context.newPage();
      await page.goto(`${origin}/#token=${await t.token("alice", [Role.USER], 3)}`);
      await page.waitForSelector('#conn[data-state="live"]');
      await page.waitForSelector('#conn[data-state="closed"]', { timeout: 15_000 });
      expect(await page.locator("#conn").textContent()).toBe("closed: 4403 Forbidden: token expired");
      await page.close();
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
