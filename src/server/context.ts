import type { DataSource } from "typeorm";
import type { Config } from "../config/config";
import type { MarketClock } from "../core/market-clock";
import { MarketRepo } from "../db/market.repo";
import type { EventBus } from "../events/bus";
import type { Governance } from "../policy/governance";
import type { Principal } from "../policy/principal";
import { createLoaders, type Context, type IngestServices } from "../resolvers/context.type";
import { WindowsRepo } from "../windows/windows.repo";
import type { AccessAudit, Origin, RequestRecord } from "./access-audit";

export interface ContextDeps {
  config: Config;
  dataSource: DataSource;
  governance: Governance;
  /** Null with the policy layer off (a benchmark measuring its cost). */
  audit: AccessAudit | null;
  clock: MarketClock;
  bus: EventBus;
  ingest: IngestServices;
}

/** Builds each operation's context: its caller's policy session, and everything a resolver reaches. */
export class OperationContexts {
  private readonly market: MarketRepo;
  private readonly windows: WindowsRepo;

  constructor(private readonly deps: ContextDeps) {
    this.market = new MarketRepo(deps.dataSource);
    this.windows = new WindowsRepo(deps.dataSource);
  }

  /** A context for one operation of `principal`, tracked for its access-log entry. */
  async create(principal: Principal, origin: Origin, request?: RequestRecord): Promise<Context> {
    const { config, governance, audit, clock, bus, ingest } = this.deps;
    const policy = audit ? await governance.open(principal) : null;
    const ctx: Context = {
      principal,
      config,
      market: this.market,
      windows: this.windows,
      governance,
      policy,
      clock,
      bus,
      ingest,
      loaders: createLoaders(this.market, () => policy?.delayCutoff() ?? null),
    };
    audit?.track(ctx, origin, request);
    return ctx;
  }
}
