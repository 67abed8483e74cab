import type { Limits } from "../config/config";
import { RateLimitedError } from "../errors";

const add = (m: Map<string, number>, id: string, by: number) => {
  const n = (m.get(id) ?? 0) + by;
  if (n > 0) m.set(id, n);
  else m.delete(id);
};

/**
 * Per-principal caps on this replica: WebSocket connections, running subscriptions and their total cost.
 * Each check and its taking happen in one synchronous call, so a burst cannot pass the check before any
 * of it counts; every place taken is given back once.
 */
export class PrincipalCaps {
  private readonly connections = new Map<string, number>();
  private readonly subscriptions = new Map<string, number>();
  private readonly costs = new Map<string, number>();

  constructor(private readonly limits: Limits) {}

  /** Takes a connection place; false when the principal holds the most it may. */
  connect(principal: string): boolean {
    if ((this.connections.get(principal) ?? 0) >= this.limits.maxConnectionsPerPrincipal) return false;
    add(this.connections, principal, 1);
    return true;
  }

  disconnect(principal: string): void {
    add(this.connections, principal, -1);
  }

  /** Takes a subscription place of `cost`; the refusal when it would exceed a cap. */
  subscribe(principal: string, cost: number): RateLimitedError | null {
    const { maxSubscriptionsPerPrincipal: max, maxSubscriptionCost: budget } = this.limits;
    if ((this.subscriptions.get(principal) ?? 0) >= max) {
      return new RateLimitedError(
        `Too many subscriptions: ${principal} has ${max} running (the cap). End one first.`,
        { limit: max },
      );
    }
    const running = this.costs.get(principal) ?? 0;
    if (running + cost > budget) {
      return new RateLimitedError(
        `Subscription budget exceeded: ${principal}'s running subscriptions cost ${running}, this one ${cost}, the budget is ${budget}. End one, or ask for fewer symbols or fields.`,
        { limit: budget, cost },
      );
    }
    add(this.subscriptions, principal, 1);
    add(this.costs, principal, cost);
    return null;
  }

  unsubscribe(principal: string, cost: number): void {
    add(this.subscriptions, principal, -1);
    add(this.costs, principal, -cost);
  }
}
