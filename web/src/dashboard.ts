import "./style.css";
import { BarChart, HeatmapChart, LineChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent, VisualMapComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import type { Client } from "graphql-ws";
import {
  askForToken,
  currentToken,
  el,
  Frame,
  gql,
  live,
  liveClient,
  type GqlError,
  type Me,
} from "./session";

echarts.use([
  LineChart,
  BarChart,
  HeatmapChart,
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
/** Points kept per symbol: 30 minutes of one-minute windows hopping every 10 s. */
const POINTS_KEPT = 180;
const DEFAULT_SYMBOLS = 5;

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
  asOf: string;
  gainers: Mover[];
  losers: Mover[];
  delayed: boolean;
}

const AGGREGATE = `symbol size windowEnd open close delayed`;
const RANKING = `windowStart windowEnd entries { rank symbol value } delayed`;
const BOARD = `asOf gainers { symbol price changePercent } losers { symbol price changePercent } delayed`;

/** What the page shows, merged from the initial queries and the subscriptions in whatever order. */
class Market {
  /** symbol → window end (ms) → close, for the chosen symbols. */
  readonly series = new Map<string, Map<number, number>>();
  /** `${size} ${symbol}` → the latest window of that size. */
  readonly latest = new Map<string, Aggregate>();
  board: Board | null = null;
  top3: Ranking | null = null;
  topPrice: Ranking | null = null;

  constructor(readonly chosen: string[]) {
    for (const s of chosen) this.series.set(s, new Map());
  }

  addWindow(a: Aggregate): void {
    const key = `${a.size} ${a.symbol}`;
    const known = this.latest.get(key);
    if (!known || known.windowEnd <= a.windowEnd) this.latest.set(key, a);
    const points = a.size === "ONE_MINUTE" ? this.series.get(a.symbol) : undefined;
    if (!points) return;
    points.set(Date.parse(a.windowEnd), a.close); // a revision replaces its window's point
    if (points.size > POINTS_KEPT) {
      const ends = [...points.keys()].sort((x, y) => x - y);
      for (const end of ends.slice(0, ends.length - POINTS_KEPT)) points.delete(end);
    }
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

const hhmmss = (iso: string) => iso.slice(11, 19);

class Dashboard {
  private readonly market: Market;
  private readonly lineChart = echarts.init(document.querySelector<HTMLElement>("#series .chart")!);
  private readonly barChart = echarts.init(document.querySelector<HTMLElement>("#movers .chart")!);
  private readonly heatChart = echarts.init(document.querySelector<HTMLElement>("#heatmap .chart")!);
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly frame: Frame,
    chosen: string[],
    /** Plot each symbol's change since its first point shown, so that prices far apart can be compared. */
    private readonly relative: boolean,
  ) {
    this.market = new Market(chosen);
    addEventListener("resize", () => {
      for (const c of [this.lineChart, this.barChart, this.heatChart]) c.resize();
    });
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
    if (b) this.frame.markDelayed(b.delayed);
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
  }

  private renderSeries(): void {
    let points = 0;
    let latest = 0;
    const series = [...this.market.series].map(([symbol, byEnd]) => {
      let data = [...byEnd].sort((a, b) => a[0] - b[0]);
      if (this.relative && data.length)
        data = data.map(([t, close]) => [t, Number(((100 * (close - data[0][1])) / data[0][1]).toFixed(4))]);
      points += data.length;
      if (data.length) latest = Math.max(latest, data[data.length - 1][0]);
      return { type: "line" as const, name: symbol, showSymbol: false, data };
    });
    this.lineChart.setOption(
      {
        animation: false,
        tooltip: { trigger: "axis" },
        legend: { top: 0 },
        grid: { left: 60, right: 20, top: 36, bottom: 30 },
        xAxis: { type: "time" },
        yAxis: {
          type: "value",
          scale: true,
          axisLabel: this.relative ? { formatter: (v: number) => `${v}%` } : {},
        },
        series,
      },
      { replaceMerge: ["series"] },
    );
    const section = document.getElementById("series")!;
    section.dataset.points = String(points);
    if (latest) section.dataset.latest = new Date(latest).toISOString();
  }

  private renderMovers(): void {
    const b = this.market.board;
    if (!b) return;
    // Losers at the bottom, gainers at the top (a category axis draws its first entry lowest).
    const rows = [...[...b.losers].reverse(), ...[...b.gainers].reverse()].filter(
      (m, i, all) => all.findIndex((x) => x.symbol === m.symbol) === i,
    );
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
    const section = document.getElementById("movers")!;
    section.dataset.bars = String(rows.length);
    section.dataset.asOf = b.asOf;
    section.querySelector("h2 small")!.textContent = `window ending ${hhmmss(b.asOf)}, open → close`;
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

/** The initial picture from queries; the subscriptions then keep it live. */
async function fill(
  token: string,
  board: Dashboard,
  chosen: string[],
  onErrors: (e: readonly GqlError[]) => void,
) {
  const { data, errors } = await gql<{
    series: { nodes: Aggregate[] };
    one: { nodes: Aggregate[] };
    five: { nodes: Aggregate[] };
    fifteen: { nodes: Aggregate[] };
    topMovers: Board | null;
    topSymbols: Ranking | null;
    topPriceStocks: Ranking[] | null;
  }>(
    token,
    `query Dashboard($symbols: [String!]!, $points: Int!) {
      series: windowAggregates(size: ONE_MINUTE, symbols: $symbols, first: $points) { nodes { ${AGGREGATE} } }
      one: windowAggregates(size: ONE_MINUTE, first: 200) { nodes { ${AGGREGATE} } }
      five: windowAggregates(size: FIVE_MINUTES, first: 200) { nodes { ${AGGREGATE} } }
      fifteen: windowAggregates(size: FIFTEEN_MINUTES, first: 200) { nodes { ${AGGREGATE} } }
      topMovers(size: ONE_MINUTE, limit: 5) { ${BOARD} }
      topSymbols(size: ONE_MINUTE, limit: 3) { ${RANKING} }
      topPriceStocks { ${RANKING} }
    }`,
    { symbols: chosen, points: Math.min(1000, chosen.length * POINTS_KEPT) },
  );
  if (errors?.length) onErrors(errors);
  if (!data) return;
  for (const part of [data.series, data.one, data.five, data.fifteen])
    for (const a of [...(part?.nodes ?? [])].reverse()) board.window(a);
  board.board(data.topMovers);
  board.top3(data.topSymbols);
  board.topPrice(data.topPriceStocks?.at(-1) ?? null);
}

function subscribe(client: Client, board: Dashboard, onErrors: (e: readonly GqlError[]) => void): void {
  for (const size of SIZES)
    live<{ windowAggregates: Aggregate }>(
      client,
      `subscription Windows($size: WindowSize!) { windowAggregates(size: $size) { ${AGGREGATE} } }`,
      { size },
      (d) => board.window(d.windowAggregates),
      onErrors,
    );
  live<{ topMovers: Board }>(
    client,
    `subscription Movers { topMovers(size: ONE_MINUTE, limit: 5) { ${BOARD} } }`,
    {},
    (d) => board.board(d.topMovers),
    onErrors,
  );
  live<{ topSymbols: Ranking }>(
    client,
    `subscription Top3 { topSymbols(size: ONE_MINUTE, limit: 3) { ${RANKING} } }`,
    {},
    (d) => board.top3(d.topSymbols),
    onErrors,
  );
  live<{ topPriceStock: Ranking }>(
    client,
    `subscription TopPrice { topPriceStock(limit: 1) { ${RANKING} } }`,
    {},
    (d) => board.topPrice(d.topPriceStock),
    onErrors,
  );
}

async function main(): Promise<void> {
  const token = currentToken();
  if (!token) return askForToken();
  const frame = new Frame();
  const onErrors = (e: readonly GqlError[]) => frame.showErrors(e);
  const { data } = await gql<{ me: Me; instruments: { symbol: string }[] }>(
    token,
    `query Start { me { id roles entitlements } instruments { symbol } }`,
  );
  if (!data) return;
  frame.signedIn(data.me);
  const input = document.getElementById("symbols") as HTMLInputElement;
  const asked = (new URLSearchParams(location.search).get("symbols") ?? "")
    .split(/[\s,]+/)
    .map((s) => s.trim().toUpperCase())
    .filter(Boolean);
  const chosen = asked.length ? asked : data.instruments.slice(0, DEFAULT_SYMBOLS).map((i) => i.symbol);
  input.value = chosen.join(", ");

  const relative = new URLSearchParams(location.search).get("relative") === "on";
  (document.getElementById("relative") as HTMLInputElement).checked = relative;
  document.querySelector("#series h2 small")!.textContent = relative
    ? "change since the first window shown, one-minute windows"
    : "close of each one-minute window";
  const board = new Dashboard(frame, chosen, relative);
  // Subscribed first, so that no window falls between the queries' answer and the first event.
  const client = liveClient(token, (state, detail) => frame.connection(state, detail));
  subscribe(client, board, onErrors);
  await fill(token, board, chosen, onErrors);
}

main().catch((err: unknown) => {
  console.error(err);
  new Frame().showErrors([{ message: String((err as Error)?.message ?? err) }]);
});
