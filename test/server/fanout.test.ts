import { Repeater } from "@graphql-yoga/subscription";
import { buildSchema, parse, type ExecutionArgs, type ExecutionResult } from "graphql";
import { FanOut, SLOW_CONSUMER, type Socket } from "../../src/server/fanout";

// The fan-out's bookkeeping over a fake socket whose backlog the test sets (the real socket is covered
// by test/subscriptions/shared-streams.test.ts): sharing, per-subscriber ids, conflation and the slow-consumer close.
const schema = buildSchema(`
  type Query { ok: Boolean }
  type Subscription { board: Int ticks: Int }
`);
const pushers: Record<string, ((v: number) => Promise<unknown>)[]> = { board: [], ticks: [] };
const started: Record<string, number> = { board: 0, ticks: 0 };
for (const name of ["board", "ticks"]) {
  const field = schema.getSubscriptionType()!.getFields()[name];
  field.subscribe = () => {
    started[name]++;
    return new Repeater<number>(async (push, stop) => {
      pushers[name].push(push);
      await stop;
    });
  };
  field.resolve = (v: number) => v;
}

class FakeSocket implements Socket {
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: { id: string; payload: ExecutionResult }[] = [];
  closed: { code: number; reason: string } | null = null;
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(code: number, reason: string): void {
    this.closed = { code, reason };
    this.readyState = 3;
  }
}

let hub: FanOut;
beforeEach(() => {
  hub = new FanOut({ maxQueued: 3, conflating: new Set(["board"]) });
  for (const k of Object.keys(pushers)) {
    pushers[k] = [];
    started[k] = 0;
  }
});
afterEach(() => hub.close());

const args = (field: string): ExecutionArgs => ({
  schema,
  document: parse(`subscription { ${field} }`),
  contextValue: { policy: null, principal: { id: "p", roles: [] } },
});

async function join(field: string, socket: FakeSocket, id: string) {
  const it = (await hub.subscribe(args(field), { socket, id, operation: field })) as AsyncIterator<unknown>;
  const ended = it.next(); // what graphql-ws does once the operation is logged: delivery starts
  return { it, ended };
}

const push = async (field: string, v: number) => {
  await pushers[field][0](v);
  await new Promise((r) => setImmediate(r));
};
const values = (s: FakeSocket) =>
  s.sent.map((m) => (m.payload.data as Record<string, number>)[Object.keys(m.payload.data!)[0]]);

test("subscribers of one operation share one source and one execution, each with its own id", async () => {
  const a = new FakeSocket();
  const b = new FakeSocket();
  await join("ticks", a, "1");
  await join("ticks", b, "x");
  await push("ticks", 7);
  expect(started.ticks).toBe(1);
  expect(a.sent).toEqual([{ id: "1", type: "next", payload: { data: { ticks: 7 } } }]);
  expect(b.sent).toEqual([{ id: "x", type: "next", payload: { data: { ticks: 7 } } }]);
});

test("the source ends with its last subscriber, and a new one starts afresh", async () => {
  const a = new FakeSocket();
  const { it, ended } = await join("ticks", a, "1");
  await it.return!();
  expect(await ended).toEqual({ done: true, value: undefined });
  await join("ticks", new FakeSocket(), "2");
  expect(started.ticks).toBe(2);
});

test("a backed-up socket gets only the newest board once it drains", async () => {
  const s = new FakeSocket();
  await join("board", s, "1");
  await push("board", 1);
  s.bufferedAmount = 10 * 1024 * 1024;
  for (let v = 2; v <= 9; v++) await push("board", v);
  expect(values(s)).toEqual([1]);
  s.bufferedAmount = 0;
  await new Promise((r) => setTimeout(r, 60));
  expect(values(s)).toEqual([1, 9]);
  expect(s.closed).toBeNull();
});

test("ticks queue while the socket is backed up and are all sent, in order, once it drains", async () => {
  const s = new FakeSocket();
  await join("ticks", s, "1");
  s.bufferedAmount = 10 * 1024 * 1024;
  for (let v = 1; v <= 3; v++) await push("ticks", v);
  expect(values(s)).toEqual([]);
  s.bufferedAmount = 0;
  await new Promise((r) => setTimeout(r, 60));
  expect(values(s)).toEqual([1, 2, 3]);
});

test("a subscriber that falls more than the queue behind is closed with 4008 and its stream ends", async () => {
  const slow = new FakeSocket();
  const fast = new FakeSocket();
  const { ended } = await join("ticks", slow, "1");
  await join("ticks", fast, "2");
  slow.bufferedAmount = 10 * 1024 * 1024;
  for (let v = 1; v <= 4; v++) await push("ticks", v);
  expect(slow.closed).toEqual({
    code: SLOW_CONSUMER,
    reason: expect.stringMatching(/^Slow consumer: more than 3 events waiting/),
  });
  expect(await ended).toEqual({ done: true, value: undefined });
  await push("ticks", 5);
  expect(values(fast)).toEqual([1, 2, 3, 4, 5]);
});
