import "./style.css";
import { BarChart, HeatmapChart, LineChart } from "echarts/charts";
import {
  DataZoomComponent,
  GridComponent,
  LegendComponent,
  TooltipComponent,
  VisualMapComponent,
} from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import {
  currentToken,
  el,
  Frame,
  LiveLink,
  promptForToken,
  Session,
  type GqlError,
  type GqlResult,
  type Me,
} from "./session";

echarts.use([
  LineChart,
  BarChart,
  HeatmapChart,
  DataZoomComponent,
  GridComponent,
  LegendComponent,
  TooltipComponent,
  VisualMapComponent,
  CanvasRenderer,
]);

const SIZES = ["ONE_MINUTE", "FIVE_MINUTES", "FIFTEEN_MINUTES"] as const;
type Size = (typeof SIZES)[number];
const SIZE_LABEL: Record<Size, string> = {
  ONE_MINUTE: "1 min",
  FIVE_MINUTES: "5 min",
  FIFTEEN_MINUTES: "15 min",
};
const RANGES = {
  "15m": 15 * 60_000,
  "1h": 3_600_000,
  "1d": 86_400_000,
} as const;
type Range = keyof typeof RANGES;
type ChartKind = "change" | "price";
type Basis = "window" | "session";
const DEFAULT_SYMBOLS = 5;
/** The largest page the API serves: a day of one symbol's one-minute windows is 8,640 rows. */
const PAGE_SIZE = 1000;
/** Hopping windows start every 10 s. */
const HOP_MS = 10_000;
/** Height of each symbol's strip when every symbol has its own price scale. */
const STRIP_PX = 96;

/**
 * What the dashboard shows, all of it in the URL so that a link reproduces it:
 * `?symbols=AAPL,MSFT&chart=change|price&range=15m|1h|1d&movers=window|session`.
 */
interface View {
  symbols: string[];
  /** `change`: % change since the range's first point, one axis; `price`: one scale per symbol. */
  chart: ChartKind;
  range: Range;
  movers: Basis;
}

function viewFromUrl(fallbackSymbols: string[]): View {
  const q = new URLSearchParams(location.search);
  const symbols = (q.get("symbols") ?? "")
    .split(/[\s,]+/)
    .map((s) => s.trim().toUpperCase())
    .filter(Boolean);
  const range = q.get("range") ?? "";
  return {
    symbols: symbols.length ? symbols : fallbackSymbols,
    chart: q.get("chart") === "price" ? "price" : "change",
    range: range in RANGES ? (range as Range) : "1h",
    movers: q.get("movers") === "session" ? "session" : "window",
  };
}

/** Replaces the address (no new history entry) with the view, so that a copied link shows the same. */
function writeUrl(v: View): void {
  const q = new URLSearchParams({
    symbols: v.symbols.join(","),
    chart: v.chart,
    range: v.range,
    movers: v.movers,
  });
  history.replaceState(null, "", `${location.pathname}?${q.toString().replace(/%2C/g, ",")}`);
}

interface Aggregate {
  symbol: string;
  size: Size;
  windowEnd: string;
  open: number;
  close: number;
  delayed: boolean;
}
interface Ranking {
  windowStart: string;
  windowEnd: string;
  entries: { rank: number; symbol: string; value: number }[];
  delayed: boolean;
}
interface Mover {
  symbol: string;
  price: number;
  changePercent: number;
}
interface Board {
  basis: "WINDOW" | "SESSION";
  asOf: string;
  gainers: Mover[];
  losers: Mover[];
  delayed: boolean;
  /** Why the server left the board empty, when it knows (e.g. no previous session stored). */
  reason: string | null;
}
interface Page<T> {
  nodes: T[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

const AGGREGATE = `symbol size windowEnd open close delayed`;
const RANKING = `windowStart windowEnd entries { rank symbol value } delayed`;
const BOARD = `basis asOf gainers { symbol price changePercent } losers { symbol price changePercent } delayed reason`;

/** What the page shows, merged from the queries and the subscriptions in whatever order they come. */
class Market {
  /** symbol → window end (ms) → close, for the chosen symbols, over the chosen range. */
  readonly series = new Map<string, Map<number, number>>();
  /** `${size} ${symbol}` → the latest window of that size. */
  readonly latest = new Map<string, Aggregate>();
  /** The latest one-minute window end of the chosen symbols: the range ends there. */
  newest = 0;
  board: Board | null = null;
  top3: Ranking | null = null;
  topPrice: Ranking | null = null;

  constructor(public rangeMs: number) {}

  choose(symbols: string[]): void {
    this.series.clear();
    this.newest = 0;
    for (const s of symbols) this.series.set(s, new Map());
  }

  addWindow(a: Aggregate): void {
    const key = `${a.size} ${a.symbol}`;
    const known = this.latest.get(key);
    if (!known || known.windowEnd <= a.windowEnd) this.latest.set(key, a);
    const points = a.size === "ONE_MINUTE" ? this.series.get(a.symbol) : undefined;
    if (!points) return;
    const end = Date.parse(a.windowEnd);
    if (end <= this.newest - this.rangeMs) return;
    points.set(end, a.close); // a revision replaces its window's point
    this.newest = Math.max(this.newest, end);
  }

  /** Drops the points that the range, ending at the newest window, no longer holds. */
  trim(): void {
    const from = this.newest - this.rangeMs;
    for (const points of this.series.values())
      for (const end of points.keys()) if (end <= from) points.delete(end);
  }

  /** Keeps the newer of two rankings or boards; an equal time is a correction and replaces it. */
  static newer<T>(old: T | null, next: T | null, time: (x: T) => string): T | null {
    if (!next) return old;
    return !old || time(old) <= time(next) ? next : old;
  }
}

function pct(n: number): string {
  return `${n >= 0 ? "+" : ""}${n.toFixed(2)}%`;
}

/** Times are shown in the browser's time zone, which the page names (`zoneLabel`). */
const clock = new Intl.DateTimeFormat("en-GB", {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});
const hhmmss = (t: string | number) => clock.format(new Date(t));

/** "times in Europe/Paris (UTC+1)", with the offset in force at `at` (summer time moves it). */
function zoneLabel(at: Date): string {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const minutes = -at.getTimezoneOffset();
  if (/^(Etc\/)?(UTC|GMT)$/.test(zone) && minutes === 0) return "times in UTC";
  const abs = Math.abs(minutes);
  const mm = abs % 60 ? `:${String(abs % 60).padStart(2, "0")}` : "";
  return `times in ${zone} (UTC${minutes < 0 ? "-" : "+"}${Math.trunc(abs / 60)}${mm})`;
}

/** Why a board has no rows: an empty chart says nothing. The server's reason first, when it gives one. */
function emptyBoardNote(b: Board): string {
  if (b.reason) return b.reason;
  if (b.basis === "WINDOW") return "No one-minute window has closed yet: movers appear with the first one.";
  const day = b.asOf.slice(0, 10);
  return (
    "No previous session's close yet. Session movers compare each symbol's latest price with its close " +
    `of the previous session (a UTC day), and nothing was stored before this session began (${day} ` +
    "00:00 UTC). They appear once a session has closed."
  );
}

type Option = echarts.EChartsCoreOption;

class Dashboard {
  private readonly market: Market;
  private readonly seriesBox = document.querySelector<HTMLElement>("#series .chart")!;
  private readonly lineChart = echarts.init(this.seriesBox);
  private readonly barChart = echarts.init(document.querySelector<HTMLElement>("#movers .chart")!);
  private readonly heatChart = echarts.init(document.querySelector<HTMLElement>("#heatmap .chart")!);
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The line chart's layout (kind and symbols) last drawn: a new one is drawn afresh. */
  private layout = "";
  private zoom = { start: 0, end: 100 };
  /** Counts range loads, so that an answer to a superseded one is dropped. */
  private loads = 0;
  private link: LiveLink | undefined;
  private stopMovers: (() => void) | undefined;

  constructor(
    private readonly session: Session,
    private readonly frame: Frame,
    private readonly view: View,
    private readonly onErrors: (e: readonly GqlError[]) => void,
  ) {
    this.market = new Market(RANGES[view.range]);
    this.market.choose(view.symbols);
    addEventListener("resize", () => {
      for (const c of [this.lineChart, this.barChart, this.heatChart]) c.resize();
    });
    this.lineChart.on("datazoom", () => {
      const [dz] = (this.lineChart.getOption() as { dataZoom: { start: number; end: number }[] }).dataZoom;
      this.showZoom({ start: dz.start, end: dz.end });
    });
    document.getElementById("zoom-reset")!.addEventListener("click", () => this.resetZoom());
    this.wireControls();
    this.showView();
  }

  private wireControls(): void {
    const symbols = document.getElementById("symbols") as HTMLInputElement;
    const relative = document.getElementById("relative") as HTMLInputElement;
    const range = document.getElementById("range") as HTMLSelectElement;
    const movers = document.getElementById("movers-basis") as HTMLSelectElement;
    symbols.value = this.view.symbols.join(", ");
    relative.checked = this.view.chart === "change";
    range.value = this.view.range;
    movers.value = this.view.movers;
    document.getElementById("controls")!.addEventListener("submit", (e) => {
      e.preventDefault();
      const asked = symbols.value
        .split(/[\s,]+/)
        .map((s) => s.trim().toUpperCase())
        .filter(Boolean);
      if (!asked.length) return;
      this.view.symbols = asked;
      symbols.value = asked.join(", ");
      this.market.choose(asked);
      this.showView();
      this.background(this.loadRange());
    });
    // Applies at once: the points are all here, only the drawing changes.
    relative.addEventListener("change", () => {
      this.view.chart = relative.checked ? "change" : "price";
      this.showView();
    });
    range.addEventListener("change", () => {
      this.view.range = range.value as Range;
      this.market.rangeMs = RANGES[this.view.range];
      this.market.choose(this.view.symbols);
      this.resetZoom();
      this.showView();
      this.background(this.loadRange());
    });
    movers.addEventListener("change", () => {
      this.view.movers = movers.value as Basis;
      this.market.board = null;
      this.showView();
      this.subscribeMovers();
      this.background(this.loadMovers());
    });
  }

  /** A load nobody awaits: a failed fetch (the server restarting, say) is shown, not left unhandled. */
  private background(load: Promise<void>): void {
    load.catch((err: unknown) => this.onErrors([{ message: String((err as Error)?.message ?? err) }]));
  }

  /** Puts the view in the URL and the headings, and redraws. */
  private showView(): void {
    writeUrl(this.view);
    const series = document.getElementById("series")!;
    series.dataset.chart = this.view.chart;
    series.dataset.range = this.view.range;
    series.querySelector("h2 small")!.textContent =
      this.view.chart === "change"
        ? "% change since the first point of the range"
        : "close of each one-minute window, one scale per symbol";
    this.schedule();
  }

  private showZoom(z: { start: number; end: number }): void {
    this.zoom = z;
    const section = document.getElementById("series")!;
    section.dataset.zoomStart = z.start.toFixed(1);
    section.dataset.zoomEnd = z.end.toFixed(1);
    document.getElementById("zoom-reset")!.hidden = z.start <= 0 && z.end >= 100;
  }

  private resetZoom(): void {
    this.lineChart.dispatchAction({ type: "dataZoom", start: 0, end: 100 });
    this.showZoom({ start: 0, end: 100 });
  }

  /** Subscribes to everything the page shows; the link makes them again after a reconnection. */
  start(link: LiveLink): void {
    this.link = link;
    for (const size of SIZES)
      link.subscribe<{ windowAggregates: Aggregate }>(
        `subscription Windows($size: WindowSize!) { windowAggregates(size: $size) { ${AGGREGATE} } }`,
        { size },
        (d) => this.window(d.windowAggregates),
        this.onErrors,
      );
    link.subscribe<{ topSymbols: Ranking }>(
      `subscription Top3 { topSymbols(size: ONE_MINUTE, limit: 3) { ${RANKING} } }`,
      {},
      (d) => this.top3(d.topSymbols),
      this.onErrors,
    );
    link.subscribe<{ topPriceStock: Ranking }>(
      `subscription TopPrice { topPriceStock(limit: 1) { ${RANKING} } }`,
      {},
      (d) => this.topPrice(d.topPriceStock),
      this.onErrors,
    );
    this.subscribeMovers();
  }

  private subscribeMovers(): void {
    this.stopMovers?.();
    const basis = this.view.movers.toUpperCase();
    this.stopMovers = this.link?.subscribe<{ topMovers: Board }>(
      `subscription Movers($basis: MoverBasis!) { topMovers(size: ONE_MINUTE, limit: 5, basis: $basis) { ${BOARD} } }`,
      { basis },
      (d) => this.board(d.topMovers),
      this.onErrors,
    );
  }

  /** Everything the page shows, from queries: at the start, and after a reconnection for what it missed. */
  async fill(): Promise<void> {
    await Promise.all([this.loadLatest(), this.loadMovers(), this.loadRange()]);
  }

  private async loadLatest(): Promise<void> {
    const { data, errors } = await this.session.gql<{
      one: Page<Aggregate>;
      five: Page<Aggregate>;
      fifteen: Page<Aggregate>;
      topSymbols: Ranking | null;
      topPriceStocks: Ranking[] | null;
    }>(
      `query Latest {
        one: windowAggregates(size: ONE_MINUTE, first: 200) { nodes { ${AGGREGATE} } }
        five: windowAggregates(size: FIVE_MINUTES, first: 200) { nodes { ${AGGREGATE} } }
        fifteen: windowAggregates(size: FIFTEEN_MINUTES, first: 200) { nodes { ${AGGREGATE} } }
        topSymbols(size: ONE_MINUTE, limit: 3) { ${RANKING} }
        topPriceStocks { ${RANKING} }
      }`,
    );
    if (errors?.length) this.onErrors(errors);
    if (!data) return;
    for (const part of [data.one, data.five, data.fifteen])
      for (const a of [...(part?.nodes ?? [])].reverse()) this.window(a);
    this.top3(data.topSymbols);
    this.topPrice(data.topPriceStocks?.at(-1) ?? null);
  }

  private async loadMovers(): Promise<void> {
    const basis = this.view.movers.toUpperCase();
    const { data, errors } = await this.session.gql<{ topMovers: Board | null }>(
      `query Movers($basis: MoverBasis!) { topMovers(size: ONE_MINUTE, limit: 5, basis: $basis) { ${BOARD} } }`,
      { basis },
    );
    if (errors?.length) this.onErrors(errors);
    this.board(data?.topMovers ?? null);
  }

  /**
   * The chosen symbols' one-minute windows over the range, newest first, page after page by cursor until
   * a page reaches back past the range's start (a day of 5 symbols is about 44 pages).
   */
  async loadRange(): Promise<void> {
    const load = ++this.loads;
    const section = document.getElementById("series")!;
    section.dataset.loading = "true";
    try {
      const pages = await this.pageRange(load);
      if (load === this.loads) section.dataset.pages = String(pages);
    } finally {
      if (load === this.loads) section.dataset.loading = "false";
    }
  }

  /** Loads the range's pages; returns how many it took, or stops early once `load` is superseded. */
  private async pageRange(load: number): Promise<number> {
    let after: string | null = null;
    let newest: number | null = null;
    let pages = 0;
    for (;;) {
      const result: GqlResult<{ windowAggregates: Page<Aggregate> }> = await this.session.gql(
        `query Range($symbols: [String!]!, $first: Int!, $after: String) {
            windowAggregates(size: ONE_MINUTE, symbols: $symbols, first: $first, after: $after, order: DESC) {
              nodes { ${AGGREGATE} }
              pageInfo { hasNextPage endCursor }
            }
          }`,
        { symbols: this.view.symbols, first: PAGE_SIZE, after },
      );
      if (load !== this.loads) return pages;
      if (result.errors?.length) this.onErrors(result.errors);
      const page = result.data?.windowAggregates;
      if (!page) return pages;
      pages++;
      for (const a of page.nodes) this.window(a);
      const oldest = page.nodes.at(-1);
      newest ??= page.nodes[0] ? Date.parse(page.nodes[0].windowEnd) : null;
      if (!page.pageInfo.hasNextPage || !oldest || newest === null) return pages;
      if (Date.parse(oldest.windowEnd) <= newest - RANGES[this.view.range]) return pages;
      after = page.pageInfo.endCursor;
    }
  }

  /** Back after a reconnection: what happened meanwhile came by no subscription, so ask for it. */
  resume(): void {
    this.background(this.fill());
  }

  /** Events can arrive many times a second (the mock market runs fast): render at most 4 times a second. */
  schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.render();
    }, 250);
  }

  window(a: Aggregate): void {
    this.frame.markDelayed(a.delayed);
    this.market.addWindow(a);
    this.schedule();
  }

  board(b: Board | null): void {
    // An event of the basis just left may still be on its way.
    if (!b || b.basis !== this.view.movers.toUpperCase()) return;
    this.frame.markDelayed(b.delayed);
    this.market.board = Market.newer(this.market.board, b, (x) => x.asOf);
    this.schedule();
  }

  top3(r: Ranking | null): void {
    if (r) this.frame.markDelayed(r.delayed);
    this.market.top3 = Market.newer(this.market.top3, r, (x) => x.windowEnd);
    this.schedule();
  }

  topPrice(r: Ranking | null): void {
    if (r) this.frame.markDelayed(r.delayed);
    this.market.topPrice = Market.newer(this.market.topPrice, r, (x) => x.windowEnd);
    this.schedule();
  }

  private render(): void {
    this.renderSeries();
    this.renderMovers();
    this.renderHeatmap();
    this.renderLeaders();
    const latest = this.market.newest || Date.parse(this.market.top3?.windowEnd ?? "") || Date.now();
    document.getElementById("tz")!.textContent = zoneLabel(new Date(latest));
  }

  /** The line chart's frame: one axis of % change, or a strip per symbol, each on its own price scale. */
  private lineLayout(symbols: string[]): Option {
    const n = symbols.length;
    const change = this.view.chart === "change";
    const axes = change ? [0] : symbols.map((_, i) => i);
    const height = change ? 320 : Math.max(320, n * STRIP_PX + 44);
    this.seriesBox.style.height = `${height}px`;
    this.lineChart.resize();
    // A day is 8,640 windows a symbol, more than the chart has pixels: lines are drawn downsampled (lttb).
    const zoom = [
      { type: "inside", xAxisIndex: axes, filterMode: "none", ...this.zoom },
      { type: "slider", xAxisIndex: axes, filterMode: "none", height: 18, bottom: 6, ...this.zoom },
    ];
    if (change)
      return {
        animation: false,
        tooltip: { trigger: "axis", formatter: changeTooltip },
        legend: { top: 0 },
        grid: { left: 60, right: 24, top: 36, bottom: 64 },
        xAxis: { type: "time" },
        yAxis: { type: "value", scale: true, axisLabel: { formatter: (v: number) => `${v}%` } },
        dataZoom: zoom,
        series: symbols.map((s) => ({
          id: s,
          name: s,
          type: "line",
          showSymbol: false,
          sampling: "lttb",
          data: [],
        })),
      };
    return {
      animation: false,
      tooltip: { trigger: "axis" },
      axisPointer: { link: [{ xAxisIndex: "all" }] },
      grid: symbols.map((_, i) => ({ left: 110, right: 24, top: 8 + i * STRIP_PX, height: STRIP_PX - 22 })),
      xAxis: symbols.map((_, i) => ({
        type: "time",
        gridIndex: i,
        axisLabel: { show: i === n - 1 },
        axisTick: { show: i === n - 1 },
      })),
      yAxis: symbols.map((s, i) => ({
        type: "value",
        gridIndex: i,
        scale: true,
        splitNumber: 2,
        name: s,
        nameLocation: "middle",
        nameRotate: 0,
        nameGap: 96,
        nameTextStyle: { align: "left", fontWeight: "bold" },
      })),
      dataZoom: zoom,
      series: symbols.map((s, i) => ({
        id: s,
        name: s,
        type: "line",
        xAxisIndex: i,
        yAxisIndex: i,
        showSymbol: false,
        sampling: "lttb",
        data: [],
      })),
    };
  }

  private renderSeries(): void {
    this.market.trim();
    const symbols = [...this.market.series.keys()];
    const layout = `${this.view.chart} ${symbols.join(",")}`;
    const section = document.getElementById("series")!;
    if (layout !== this.layout) {
      this.lineChart.setOption(this.lineLayout(symbols), { notMerge: true });
      this.layout = layout;
      section.dataset.axes = String(this.view.chart === "change" ? 1 : symbols.length);
    }
    let points = 0;
    let gaps = 0;
    let first = Infinity;
    let latest = 0;
    const series = [...this.market.series].map(([symbol, byEnd]) => {
      const data: number[][] = [...byEnd].sort((a, b) => a[0] - b[0]);
      points += data.length;
      for (let i = 1; i < data.length; i++) gaps += (data[i][0] - data[i - 1][0]) / HOP_MS - 1;
      if (data.length) {
        first = Math.min(first, data[0][0]);
        latest = Math.max(latest, data[data.length - 1][0]);
      }
      if (this.view.chart === "change" && data.length) {
        const base = data[0][1];
        return {
          id: symbol,
          data: data.map(([t, close]) => [t, Number(((100 * (close - base)) / base).toFixed(4)), close]),
        };
      }
      return { id: symbol, data };
    });
    // Every strip spans the same time, so that they line up.
    const extent = { min: first, max: latest };
    this.lineChart.setOption({
      ...(latest ? { xAxis: (this.view.chart === "change" ? [0] : symbols).map(() => extent) } : {}),
      series,
    });
    section.dataset.points = String(points);
    // Windows missing between a symbol's first and last point (a symbol without trades for a minute has
    // none; any other hole is a fault).
    section.dataset.gaps = String(gaps);
    if (latest) {
      section.dataset.first = new Date(first).toISOString();
      section.dataset.latest = new Date(latest).toISOString();
    }
  }

  private renderMovers(): void {
    const b = this.market.board;
    const section = document.getElementById("movers")!;
    const note = section.querySelector<HTMLElement>(".empty")!;
    const asOf = section.querySelector(".asof")!;
    section.dataset.basis = this.view.movers;
    if (!b) {
      this.barChart.clear();
      note.hidden = true;
      section.dataset.bars = "0";
      asOf.textContent = "";
      return;
    }
    // Losers at the bottom, gainers at the top (a category axis draws its first entry lowest).
    const rows = [...[...b.losers].reverse(), ...[...b.gainers].reverse()].filter(
      (m, i, all) => all.findIndex((x) => x.symbol === m.symbol) === i,
    );
    section.dataset.bars = String(rows.length);
    section.dataset.asOf = b.asOf;
    asOf.textContent =
      b.basis === "WINDOW"
        ? `window ending ${hhmmss(b.asOf)}, open → close`
        : `previous session's close → price at ${hhmmss(b.asOf)}`;
    note.hidden = rows.length > 0;
    if (!rows.length) {
      note.textContent = emptyBoardNote(b);
      this.barChart.clear();
      return;
    }
    this.barChart.setOption({
      animation: false,
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      grid: { left: 60, right: 50, top: 10, bottom: 30 },
      xAxis: { type: "value", axisLabel: { formatter: (v: number) => `${v}%` } },
      yAxis: { type: "category", data: rows.map((m) => m.symbol) },
      series: [
        {
          type: "bar",
          data: rows.map((m) => ({
            value: Number(m.changePercent.toFixed(3)),
            itemStyle: { color: m.changePercent >= 0 ? "#1e8449" : "#c0392b" },
          })),
          label: { show: true, position: "right", formatter: (p: { value: number }) => pct(p.value) },
        },
      ],
    });
  }

  private renderHeatmap(): void {
    const all = [...this.market.latest.values()];
    if (!all.length) return;
    const symbols = [...new Set(all.map((a) => a.symbol))].sort();
    const data = all.map((a) => [
      symbols.indexOf(a.symbol),
      SIZES.indexOf(a.size),
      Number(((100 * (a.close - a.open)) / a.open).toFixed(3)),
    ]);
    const extent = Math.max(0.05, ...data.map((d) => Math.abs(d[2])));
    this.heatChart.setOption({
      animation: false,
      tooltip: {
        formatter: (p: { value: number[] }) =>
          `${symbols[p.value[0]]} · ${SIZE_LABEL[SIZES[p.value[1]]]}: ${pct(p.value[2])}`,
      },
      grid: { left: 60, right: 90, top: 10, bottom: 60 },
      xAxis: {
        type: "category",
        data: symbols,
        axisLabel: { rotate: 60, interval: 0 },
        splitArea: { show: true },
      },
      yAxis: { type: "category", data: SIZES.map((s) => SIZE_LABEL[s]), splitArea: { show: true } },
      visualMap: {
        min: -extent,
        max: extent,
        calculable: true,
        orient: "vertical",
        right: 0,
        top: "middle",
        itemHeight: 140,
        formatter: (v: number) => pct(v),
        precision: 2,
        inRange: { color: ["#c0392b", "#f4f4f4", "#1e8449"] },
      },
      series: [
        {
          type: "heatmap",
          data,
          label: { show: symbols.length <= 20, formatter: (p: { value: number[] }) => p.value[2].toFixed(2) },
        },
      ],
    });
    const section = document.getElementById("heatmap")!;
    section.dataset.cells = String(data.length);
    section.dataset.latest = all.reduce((m, a) => (a.windowEnd > m ? a.windowEnd : m), "");
  }

  private renderLeaders(): void {
    const top3 = this.market.top3;
    if (top3) {
      const box = document.getElementById("top3")!;
      box
        .querySelector("ol")!
        .replaceChildren(
          ...top3.entries.map((e) =>
            el("li", {}, el("strong", {}, e.symbol), " ", el("span", { class: "value" }, e.value.toFixed(2))),
          ),
        );
      box.querySelector(".asof")!.textContent = `window ending ${hhmmss(top3.windowEnd)}`;
      box.dataset.entries = String(top3.entries.length);
      box.dataset.windowEnd = top3.windowEnd;
    }
    const top = this.market.topPrice;
    if (top) {
      const box = document.getElementById("top-price")!;
      const first = top.entries[0];
      box
        .querySelector(".big")!
        .replaceChildren(
          ...(first
            ? [el("strong", {}, first.symbol), " ", el("span", { class: "value" }, first.value.toFixed(2))]
            : ["—"]),
        );
      box.querySelector(".asof")!.textContent = `${hhmmss(top.windowStart)} – ${hhmmss(top.windowEnd)}`;
      box.dataset.entries = String(top.entries.length);
      box.dataset.windowEnd = top.windowEnd;
    }
  }
}

/** The % change view's tooltip: each symbol's change and the price it comes from. */
function changeTooltip(params: unknown): string {
  const ps = params as { marker: string; seriesName: string; value: [number, number, number] }[];
  if (!ps.length) return "";
  const rows = ps.map(
    (p) =>
      `${p.marker}${p.seriesName} <b>${pct(p.value[1])}</b> <span class="value">${p.value[2].toFixed(2)}</span>`,
  );
  return [hhmmss(ps[0].value[0]), ...rows].join("<br>");
}

async function main(): Promise<void> {
  const session = new Session(currentToken() ?? (await promptForToken()));
  const frame = new Frame();
  const onErrors = (e: readonly GqlError[]) => frame.showErrors(e);
  const { data, errors } = await session.gql<{ me: Me; instruments: { symbol: string }[] }>(
    `query Start { me { id roles entitlements } instruments { symbol } }`,
  );
  if (errors?.length) onErrors(errors);
  if (!data) return;
  frame.signedIn(data.me);
  const view = viewFromUrl(data.instruments.slice(0, DEFAULT_SYMBOLS).map((i) => i.symbol));
  const dashboard = new Dashboard(session, frame, view, onErrors);
  // Subscribed first, so that no window falls between the queries' answer and the first event.
  const link = new LiveLink(
    session,
    (s) => frame.link(s),
    () => dashboard.resume(),
  );
  dashboard.start(link);
  await dashboard.fill();
}

main().catch((err: unknown) => {
  console.error(err);
  new Frame().showErrors([{ message: String((err as Error)?.message ?? err) }]);
});
