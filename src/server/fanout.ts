import {
  getOperationAST,
  Kind,
  print,
  subscribe,
  visit,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type OperationDefinitionNode,
} from "graphql";
import { log } from "../log";
import { subscribers, subscriptionsShared, subscriptionSlowClosed } from "../metrics";
import { sorted } from "../policy/governance";
import { PolicySession, RECHECK_MS, servedAccount, type ServedAccount } from "../policy/session";
import { createLoaders, type Context } from "../resolvers/context.type";
import { maskError } from "./errors";
import { tooLarge, withinBytes } from "./responses";

/** The part of a `ws` WebSocket the fan-out writes to. */
export interface Socket {
  readonly readyState: number;
  /** Bytes accepted by `send` but not yet handed to the kernel. */
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code: number, reason: string): void;
}

/** A connection's TCP stream: writes between `cork` and `uncork` leave in one system call. */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

/** Where one subscribe message's events go: its connection and operation id. */
export interface Transport {
  socket: Socket;
  /** The connection's TCP socket, corked while one turn of the event loop writes events to it. */
  stream?: Corkable;
  /** Whether the connection runs other subscriptions too (then its writes are gathered per turn). */
  multiplexed?: () => boolean;
  id: string;
  /** The operation as executed (`sharingKey`): equal keys, equal events for equal views. */
  operation: string;
}

/**
 * What decides a subscription's events (with the subscriber's view): the operation as executed, its
 * name left out and printed canonically, with the document's fragments, and its variables with keys
 * sorted. Subscribers whose operations differ only in name, spacing or key order share one stream.
 */
export function sharingKey(
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> | null | undefined,
): string {
  const fragments = document.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION);
  const executed = print({
    kind: Kind.DOCUMENT,
    definitions: [{ ...operation, name: undefined }, ...fragments],
  });
  return `${executed}\n${JSON.stringify(variables ?? {}, sortedKeys)}`;
}

/** A JSON.stringify replacer that writes every object's keys in order (arrays keep theirs). */
function sortedKeys(_key: string, value: unknown): unknown {
  if (!value || typeof value !== "object" || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Marks the operation key of a stream resumed after a cursor, which is never shared. */
const UNSHARED = "\n#unshared ";

/** Close code for a client that does not read its events fast enough. */
export const SLOW_CONSUMER = 4008;
const OPEN = 1;

export interface FanOutOptions {
  /** Events one subscription may have waiting while its socket is backed up. */
  maxQueued: number;
  /** Root fields whose events replace each other (rankings, boards): a slow client gets the newest. */
  conflating: ReadonlySet<string>;
  /** Bytes a socket may buffer before events wait in their subscription's queue. @default 256 KiB */
  highWaterBytes?: number;
  /** Largest event payload; a larger one is replaced by a RESPONSE_TOO_LARGE error. @default no cap */
  maxPayloadBytes?: number;
}

/**
 * Subscriptions executed once per distinct selection: subscribers with the same operation, variables and
 * policy view (roles and entitlements) share one source stream, one execution and one serialized payload
 * per event, which is written to each of their sockets as it is. Each subscriber keeps its own access-log
 * account, is re-checked against its own entitlements (moving to the stream of its new view when they
 * change), and has its own bounded queue for when its socket backs up.
 */
export class FanOut {
  /** Streams being started, by key (subscribers arriving meanwhile wait for the same start). */
  private readonly starting = new Map<string, Promise<Group | ExecutionResult>>();
  private readonly live = new Map<string, Group>();
  private readonly backlog = new Set<Member>();
  private drainTimer: NodeJS.Timeout | undefined;
  private readonly recheckTimer: NodeJS.Timeout;
  private rechecking = false;
  private readonly corked = new Set<Corkable>();
  /** Streams that resume after a cursor are never shared: each replays from its own position. */
  private unshared = 0;
  readonly highWater: number;

  constructor(readonly opts: FanOutOptions) {
    this.highWater = opts.highWaterBytes ?? 256 * 1024;
    this.recheckTimer = setInterval(() => void this.recheck(), RECHECK_MS / 2).unref();
  }

  /** graphql-ws's `subscribe`: a stream whose events are written straight to `transport`'s socket. */
  async subscribe(args: ExecutionArgs, transport: Transport): Promise<ExecutionResult | Member> {
    const policy = (args.contextValue as Context).policy;
    const operation = resumesAfterCursor(args)
      ? `${transport.operation}${UNSHARED}${++this.unshared}`
      : transport.operation;
    let found = await this.join(args, policy, operation);
    // A stream whose last subscriber just left is not joined: the next call starts a new one.
    while (found instanceof Group && found.ended) found = await this.join(args, policy, operation);
    if (!(found instanceof Group)) return found;
    const root = getOperationAST(args.document, args.operationName);
    const fields =
      root?.selectionSet.selections.map((s) => (s.kind === Kind.FIELD ? s.name.value : "")) ?? [];
    const conflate = fields.length > 0 && fields.every((f) => this.opts.conflating.has(f));
    found.joining++;
    return new Member(this, found, args, { ...transport, operation }, conflate);
  }

  /** The running group of this operation and view, started when there is none. */
  private async join(
    args: ExecutionArgs,
    policy: PolicySession | null,
    operation: string,
  ): Promise<Group | ExecutionResult> {
    const key = `${policy?.view() ?? "open"}\n${operation}`;
    const running = this.live.get(key);
    if (running) return running;
    let starting = this.starting.get(key);
    if (!starting) {
      starting = Group.start(this, key, args, policy);
      this.starting.set(key, starting);
      starting
        .then(
          (g) => g instanceof Group && !g.ended && this.live.set(key, g),
          () => {},
        )
        .finally(() => this.starting.delete(key));
    }
    const g = await starting;
    if (g instanceof Group) return g;
    // Refused at subscribe time (bad input, forbidden): the caller's own account shows it.
    const refused = g as ExecutionResult & { shared?: PolicySession | null };
    if (policy && refused.shared) policy.absorb(refused.shared);
    return { errors: refused.errors, data: refused.data };
  }

  /** @internal */
  dropGroup(group: Group): void {
    if (this.live.get(group.key) === group) this.live.delete(group.key);
    subscriptionsShared.dec();
  }

  /** Moves a subscriber whose entitlements changed to the stream of its new view. */
  private async rehome(m: Member): Promise<void> {
    m.group.leave(m);
    // A resumed stream continues after what this subscriber was sent, not from where it first resumed.
    if (m.cursor !== undefined && m.transport.operation.includes(UNSHARED))
      m.args = resumedAfter(m.args, m.cursor);
    try {
      const next = await this.join(m.args, m.ctx.policy, m.transport.operation);
      if (m.ended) return;
      if (next instanceof Group) next.enter(m, false);
      else m.end(undefined, next);
    } catch (err) {
      m.end(err);
    }
  }

  /** Twice a second: subscribers re-read their entitlements (cached per principal) and move if needed. */
  private async recheck(): Promise<void> {
    if (this.rechecking) return;
    this.rechecking = true;
    try {
      for (const g of [...this.live.values()]) {
        for (const m of [...g.members]) {
          const s = m.ctx.policy;
          if (!s?.stale) continue;
          try {
            await s.refresh();
          } catch (err) {
            log.warn({ err }, "a subscriber's entitlements could not be re-read; kept as they were");
            continue;
          }
          if (m.group === g && s.view() !== g.view) await this.rehome(m);
        }
      }
    } finally {
      this.rechecking = false;
    }
  }

  /**
   * @internal Holds a connection's writes until this turn of the event loop is over, so that the events
   * of all its subscriptions written in it leave in one system call.
   */
  cork(stream: Corkable): void {
    if (this.corked.has(stream)) return;
    stream.cork();
    if (!this.corked.size) setImmediate(() => this.uncorkAll());
    this.corked.add(stream);
  }

  private uncorkAll(): void {
    for (const s of this.corked) s.uncork();
    this.corked.clear();
  }

  /** @internal A subscriber has events waiting for its socket to drain. */
  waiting(m: Member): void {
    this.backlog.add(m);
    this.drainTimer ??= setInterval(() => {
      for (const w of this.backlog) if (w.flush()) this.backlog.delete(w);
      if (!this.backlog.size) {
        clearInterval(this.drainTimer);
        this.drainTimer = undefined;
      }
    }, 20);
  }

  /** @internal */
  forget(m: Member): void {
    this.backlog.delete(m);
  }

  close(): void {
    this.uncorkAll();
    clearInterval(this.recheckTimer);
    clearInterval(this.drainTimer);
  }
}

/** An event as sent, with what it served (for the access log of each subscriber it reaches). */
interface Sent {
  body: string;
  served: ServedAccount | null;
  rows: number;
}

/** One source stream and execution, shared by every subscriber of one operation and view. */
class Group {
  /** Subscribers receiving events. */
  readonly members = new Set<Member>();
  /** Subscribers handed to graphql-ws whose access-log START entry is not written yet. */
  joining = 0;
  ended = false;
  /** The events that make up the field's current value (see `LiveMark`), by id: a joiner gets them first. */
  private readonly current = new Map<string, Sent>();
  private currentAt = -Infinity;
  /** The distinct accounts its events served (see `servedAccount`). */
  private readonly accounts = new Map<string, ServedAccount>();
  /** Resolves once the first subscriber is receiving (or the stream ended): nothing is read before. */
  private readonly receiving: Promise<void>;
  private nowReceiving!: () => void;

  private constructor(
    private readonly hub: FanOut,
    readonly key: string,
    readonly view: string,
    private readonly ctx: Context,
    private readonly stream: AsyncIterator<ExecutionResult>,
  ) {
    this.receiving = new Promise((ok) => (this.nowReceiving = ok));
  }

  static start(
    hub: FanOut,
    key: string,
    args: ExecutionArgs,
    policy: PolicySession | null,
  ): Promise<Group | ExecutionResult> {
    return (async () => {
      const first = args.contextValue as Context;
      const shared = policy ? await PolicySession.sharing(policy) : null;
      const ctx: Context = {
        ...first,
        principal: { id: shared?.principal.id ?? "shared", roles: first.principal.roles },
        policy: shared,
      };
      ctx.loaders = createLoaders(ctx.market, () => shared?.delayCutoff() ?? null);
      const result = await subscribe({ ...args, contextValue: ctx });
      if (!isAsyncIterable(result)) return Object.assign(result, { shared });
      const group = new Group(hub, key, policy?.view() ?? "open", ctx, result[Symbol.asyncIterator]());
      subscriptionsShared.inc();
      void group.run();
      return group;
    })();
  }

  /** Starts delivering to `m` (`joining`: it was counted in `joining` until now). */
  enter(m: Member, joining: boolean): void {
    if (joining) this.joining--;
    m.group = this;
    m.active = true;
    if (this.ended) return m.end();
    this.members.add(m);
    subscribers.inc();
    this.nowReceiving();
    // A subscriber that joins a running stream starts from the current value, as the first one did.
    for (const sent of this.current.values()) m.deliver(sent.body, sent.served, sent.rows);
  }

  /** Stops delivering to `m`; the stream ends with its last subscriber. */
  leave(m: Member): void {
    if (this.members.delete(m)) subscribers.dec();
    else if (!m.active) this.joining--;
    if (this.members.size || this.joining || this.ended) return;
    this.ended = true;
    this.hub.dropGroup(this);
    this.nowReceiving();
    void this.stream.return?.();
  }

  /** Pulls events and writes each, serialized once, to every subscriber. */
  private async run(): Promise<void> {
    const shared = this.ctx.policy;
    try {
      // The stream's first events are the current value (or a replay): they wait for their subscriber.
      await this.receiving;
      for (;;) {
        shared?.resetServed();
        // Loaders cache for one event, not for the life of the stream.
        this.ctx.loaders = createLoaders(this.ctx.market, () => shared?.delayCutoff() ?? null);
        const r = await this.stream.next();
        if (r.done || this.ended) break;
        const body = payloadOf(r.value, shared, this.hub.opts.maxPayloadBytes ?? Infinity);
        const rows = shared?.rows ?? 0;
        const served = shared && servedAccount(shared, this.accounts);
        const cursor = this.ctx.liveCursor;
        this.ctx.liveCursor = undefined;
        this.remember(body, served, rows);
        for (const m of this.members) m.deliver(body, served, rows, cursor);
      }
      this.finish();
    } catch (err) {
      this.finish(err);
    }
  }

  /** Keeps the event if it is part of the field's current value (its stream marked it so). */
  private remember(body: string, served: ServedAccount | null, rows: number): void {
    const mark = this.ctx.liveMark;
    this.ctx.liveMark = undefined;
    if (!mark || mark.at < this.currentAt) return;
    if (mark.at > this.currentAt) {
      this.current.clear();
      this.currentAt = mark.at;
    }
    this.current.set(mark.id, { body, served, rows });
  }

  private finish(err?: unknown): void {
    if (!this.ended) {
      this.ended = true;
      this.hub.dropGroup(this);
    }
    for (const m of [...this.members]) m.end(err);
  }
}

/**
 * One subscriber: the iterator graphql-ws runs (it yields nothing; events go straight to the socket, and
 * it ends with the stream), plus its queue for when its socket backs up.
 */
class Member implements AsyncIterableIterator<ExecutionResult> {
  private readonly prefix: string;
  /** Events waiting for the socket: each frame with the rows it carries. */
  private queue: [string, number][] = [];
  /** Delivering (graphql-ws started reading it, after the START entry). */
  active = false;
  private done = false;
  private settle: ((r: IteratorResult<ExecutionResult>) => void) | undefined;
  private fail: ((err: unknown) => void) | undefined;
  private last: { error?: unknown; result?: ExecutionResult } | undefined;
  /** The cursor of the last event of a resumable stream written or queued for this subscriber. */
  cursor: string | undefined;

  constructor(
    private readonly hub: FanOut,
    public group: Group,
    public args: ExecutionArgs,
    readonly transport: Transport,
    private readonly conflate: boolean,
  ) {
    this.prefix = `{"id":${JSON.stringify(transport.id)},"type":"next","payload":`;
  }

  get ctx(): Context {
    return this.args.contextValue as Context;
  }

  /** Called by graphql-ws once the operation is logged: from now on events are delivered. */
  next(): Promise<IteratorResult<ExecutionResult>> {
    if (this.last?.result) {
      const value = this.last.result;
      this.last = {};
      return Promise.resolve({ done: false, value });
    }
    if (this.done || this.last) return this.finished();
    if (!this.active) this.group.enter(this, true);
    return new Promise((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
  }

  private finished(): Promise<IteratorResult<ExecutionResult>> {
    this.done = true;
    const error = this.last?.error;
    if (!error) return Promise.resolve({ done: true, value: undefined });
    return Promise.reject(error instanceof Error ? error : new Error("the stream failed", { cause: error }));
  }

  return(): Promise<IteratorResult<ExecutionResult>> {
    this.end();
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  get ended(): boolean {
    return this.done || this.last !== undefined;
  }

  /** Ends the stream: with an error, with one last result (sent through graphql-ws), or plainly. */
  end(error?: unknown, result?: ExecutionResult): void {
    if (this.ended) return;
    this.group.leave(this);
    this.hub.forget(this);
    this.last = { error, result };
    const settle = this.settle;
    const fail = this.fail;
    this.settle = this.fail = undefined;
    if (!settle) return;
    if (result) {
      this.last = {};
      settle({ done: false, value: result });
    } else if (error) {
      this.done = true;
      fail!(error);
    } else {
      this.done = true;
      settle({ done: true, value: undefined });
    }
  }

  /** Writes one event's payload, or queues it while the socket is backed up. */
  deliver(body: string, shared: ServedAccount | null, rows: number, cursor?: string): void {
    const { socket } = this.transport;
    if (socket.readyState !== OPEN) return;
    if (cursor !== undefined) this.cursor = cursor;
    const policy = this.ctx.policy;
    if (shared) policy?.absorb(shared);
    const frame = this.prefix + body + "}";
    if (!this.queue.length && socket.bufferedAmount <= this.hub.highWater) {
      // A connection with one subscription writes at once; one with several gathers this turn's events.
      const { stream, multiplexed } = this.transport;
      if (stream && multiplexed?.()) this.hub.cork(stream);
      socket.send(frame);
      policy?.delivered(rows);
      return;
    }
    if (this.conflate) this.queue = [[frame, rows]];
    else if (this.queue.push([frame, rows]) > this.hub.opts.maxQueued) {
      subscriptionSlowClosed.inc();
      log.warn({ id: this.transport.id, queued: this.queue.length }, "slow consumer closed");
      this.queue = [];
      socket.close(
        SLOW_CONSUMER,
        `Slow consumer: more than ${this.hub.opts.maxQueued} events waiting for subscription ${this.transport.id}`.slice(
          0,
          123,
        ),
      );
      this.end();
      return;
    }
    this.hub.waiting(this);
  }

  /** Sends what waits while the socket takes it; true once nothing waits. */
  flush(): boolean {
    const { socket } = this.transport;
    if (socket.readyState !== OPEN) this.queue = [];
    while (this.queue.length && socket.bufferedAmount <= this.hub.highWater) {
      const [frame, rows] = this.queue.shift()!;
      socket.send(frame);
      this.ctx.policy?.delivered(rows);
    }
    return !this.queue.length;
  }
}

/** An event as the client receives it: errors masked, masked coordinates listed. Serialized once. */
function payloadOf(result: ExecutionResult, shared: PolicySession | null, maxBytes: number): string {
  const masked = shared?.eventMasked.size ? { masked: sorted(shared.eventMasked) } : null;
  const body = JSON.stringify({
    ...(result.errors?.length ? { errors: result.errors.map((e) => maskError(e.toJSON(), e)) } : {}),
    data: result.data,
    ...(result.extensions || masked ? { extensions: { ...result.extensions, ...masked } } : {}),
  });
  return withinBytes(body, maxBytes) ? body : JSON.stringify(tooLarge(maxBytes));
}

/** Whether the operation's root field resumes after a cursor (an `after` argument that is not null). */
function resumesAfterCursor(args: ExecutionArgs): boolean {
  const op = getOperationAST(args.document, args.operationName);
  return (op?.selectionSet.selections ?? []).some(
    (s) =>
      s.kind === Kind.FIELD &&
      (s.arguments ?? []).some(
        (a) =>
          a.name.value === "after" &&
          a.value.kind !== Kind.NULL &&
          (a.value.kind !== Kind.VARIABLE || args.variableValues?.[a.value.name.value] != null),
      ),
  );
}

/** The operation's arguments with its root field's `after` set to `cursor`. */
function resumedAfter(args: ExecutionArgs, cursor: string): ExecutionArgs {
  const op = getOperationAST(args.document, args.operationName);
  const arg = op?.selectionSet.selections
    .flatMap((s) => (s.kind === Kind.FIELD ? (s.arguments ?? []) : []))
    .find((a) => a.name.value === "after");
  if (!arg) return args;
  if (arg.value.kind === Kind.VARIABLE)
    return { ...args, variableValues: { ...args.variableValues, [arg.value.name.value]: cursor } };
  const document = visit(args.document, {
    Argument: (node) => (node === arg ? { ...node, value: { kind: Kind.STRING, value: cursor } } : undefined),
  });
  return { ...args, document };
}

function isAsyncIterable<T>(v: unknown): v is AsyncIterable<T> {
  return typeof (v as AsyncIterable<T> | null)?.[Symbol.asyncIterator] === "function";
}
