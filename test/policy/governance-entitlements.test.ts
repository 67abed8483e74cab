import { Entitlement, Role } from "../../src/policy/principal";
import { grantEntitlements } from "../support/governance";
import { seedQuotes } from "../support/seed";
import { until } from "../support/wait";
import { startTestPlatform, wsQuery, type TestPlatform } from "../support/server";

let t: TestPlatform;
let owner: string;
let owner2: string;
let steward: string;
const DELAY_SECONDS = 600;
const STEP_MS = 5000;
const SPAN_MS = 40 * 60 * 1000;

beforeAll(async () => {
  // Quotes every 5 s over the last 40 minutes: the newest stored trade is the market's now.
  t = await startTestPlatform({ DELAY_SECONDS: String(DELAY_SECONDS) }, {}, (url) =>
    seedQuotes(url, {
      symbols: ["AAPL", "MSFT", "NVDA"],
      perSymbol: SPAN_MS / STEP_MS,
      start: new Date(Date.now() - SPAN_MS),
      stepMs: STEP_MS,
      marketNow: null,
    }),
  );
  owner = await t.token("olga", [Role.OWNER]);
  owner2 = await t.token("otto", [Role.OWNER, Role.USER]);
  steward = await t.token("stan", [Role.STEWARD]);
});
afterAll(() => t.close());

const me = async (token: string) => (await t.gql(`{ me { id entitlements } }`, { token })).body.data.me;
const codeOf = (body: { errors?: { extensions?: Record<string, unknown> }[] }) =>
  body.errors?.[0]?.extensions?.code;

describe("grants", () => {
  test("an owner grants with expiry; me.entitlements lists active grants", async () => {
    const expiresAt = new Date(Date.now() + 3600_000).toISOString();
    const { body } = await t.gql(
      `mutation($x: DateTime) { grantEntitlement(principal: "gina", entitlement: REALTIME, expiresAt: $x) {
        principal entitlement grantedBy expiresAt revokedAt } }`,
      { token: owner, variables: { x: expiresAt } },
    );
    expect(body.errors).toBeUndefined();
    expect(body.data.grantEntitlement).toEqual({
      principal: "gina",
      entitlement: "REALTIME",
      grantedBy: "olga",
      expiresAt,
      revokedAt: null,
    });
    expect(await me(await t.token("gina"))).toEqual({ id: "gina", entitlements: ["REALTIME"] });
  });

  test.each([
    ["a steward granting itself", "stan", () => steward],
    ["a steward granting someone else", "gina", () => steward],
    ["an owner granting itself", "olga", () => owner],
  ])("%s is FORBIDDEN", async (_name, principal, token) => {
    const { body } = await t.gql(
      `mutation($p: String!) { grantEntitlement(principal: $p, entitlement: DEPTH) { id } }`,
      { token: token(), variables: { p: principal } },
    );
    expect(codeOf(body)).toBe("FORBIDDEN");
    expect(body.data.grantEntitlement).toBeNull();
    expect((await me(await t.token(principal, [Role.USER]))).entitlements).not.toContain("DEPTH");
  });

  test("an expiry in the past is BAD_USER_INPUT", async () => {
    const { body } = await t.gql(
      `mutation { grantEntitlement(principal: "gina", entitlement: DEPTH, expiresAt: "2020-01-01T00:00:00Z") { id } }`,
      { token: owner },
    );
    expect(codeOf(body)).toBe("BAD_USER_INPUT");
  });

  test("a grant counts until its expiry and not after, whatever was cached", async () => {
    const expiresAt = Date.now() + 4000;
    await grantEntitlements(t, "eve", [Entitlement.DEPTH], new Date(expiresAt));
    const eve = await t.token("eve");
    const q = `{ latestQuotes(symbols: ["AAPL"]) { bid } }`;
    // Asked again and again across the expiry: served while it holds, masked from the expiry on.
    const answers: { sentAt: number; receivedAt: number; bid: number | null }[] = [];
    await until("a request sent after the expiry", async () => {
      const sentAt = Date.now();
      const bid = (await t.gql(q, { token: eve })).body.data.latestQuotes[0].bid;
      answers.push({ sentAt, receivedAt: Date.now(), bid });
      return sentAt > expiresAt ? true : undefined;
    });
    const before = answers.filter((a) => a.receivedAt < expiresAt);
    const after = answers.filter((a) => a.sentAt > expiresAt);
    expect(before.length).toBeGreaterThan(0);
    expect(before.every((a) => typeof a.bid === "number")).toBe(true);
    expect(after.map((a) => a.bid)).toEqual([null]);
    expect((await me(eve)).entitlements).toEqual([]);
  });

  test("revocation takes effect on the very next operation, and history is kept", async () => {
    await grantEntitlements(t, "rex", [Entitlement.DEPTH]);
    const rex = await t.token("rex");
    const q = `{ instrument(symbol: "MSFT") { latestQuote { ask } } }`;
    expect((await t.gql(q, { token: rex })).body.data.instrument.latestQuote.ask).toEqual(expect.any(Number));
    const beforeRevoke = new Date();
    const { body } = await t.gql(
      `mutation { revokeEntitlement(principal: "rex", entitlement: DEPTH) { revokedAt } }`,
      { token: owner },
    );
    expect(body.data.revokeEntitlement.revokedAt).toEqual(expect.any(String));
    expect((await t.gql(q, { token: rex })).body.data.instrument.latestQuote.ask).toBeNull();
    // Nothing is deleted: the grant is still listed, now with revokedAt.
    const grants = await t.gql(`{ grants(principal: "rex") { entitlement revokedAt } }`, { token: steward });
    expect(grants.body.data.grants).toEqual([{ entitlement: "DEPTH", revokedAt: expect.any(String) }]);
    // And the report answers for the past.
    const report = async (at: Date) =>
      (
        await t.gql(
          `query($at: DateTime!) { entitlementReport(at: $at) { principal entitlement since until } }`,
          {
            token: steward,
            variables: { at: at.toISOString() },
          },
        )
      ).body.data.entitlementReport.filter((h: { principal: string }) => h.principal === "rex");
    expect(await report(beforeRevoke)).toEqual([
      { principal: "rex", entitlement: "DEPTH", since: expect.any(String), until: expect.any(String) },
    ]);
    expect(await report(new Date())).toEqual([]);
    expect(await report(new Date(Date.now() - 3600_000))).toEqual([]);
  });

  test("revoking what is not held is BAD_USER_INPUT", async () => {
    const { body } = await t.gql(
      `mutation { revokeEntitlement(principal: "nobody", entitlement: DEPTH) { id } }`,
      {
        token: owner,
      },
    );
    expect(codeOf(body)).toBe("BAD_USER_INPUT");
  });
});

describe("access requests", () => {
  const request = (token: string, entitlement = "REALTIME") =>
    t.gql(
      `mutation($e: Entitlement!) { requestAccess(entitlement: $e, reason: "trading desk") { id principal status } }`,
      { token, variables: { e: entitlement } },
    );
  const decide = (token: string, id: string, approve = true) =>
    t.gql(
      `mutation($id: ID!, $a: Boolean!) { decideAccessRequest(id: $id, approve: $a, note: "ok") { status decidedBy note } }`,
      { token, variables: { id, a: approve } },
    );

  test("a user requests, an owner approves, the grant follows; deciding twice is refused", async () => {
    const ursula = await t.token("ursula");
    const { body } = await request(ursula);
    expect(body.data.requestAccess).toMatchObject({ principal: "ursula", status: "PENDING" });
    const id = body.data.requestAccess.id;
    expect(codeOf((await request(ursula)).body)).toBe("BAD_USER_INPUT"); // one pending at a time
    expect(codeOf((await decide(ursula, id)).body)).toBe("FORBIDDEN"); // a USER does not decide
    const decided = await decide(owner, id);
    expect(decided.body.data.decideAccessRequest).toEqual({
      status: "APPROVED",
      decidedBy: "olga",
      note: "ok",
    });
    expect((await me(ursula)).entitlements).toEqual(["REALTIME"]);
    expect(codeOf((await decide(owner2, id, false)).body)).toBe("BAD_USER_INPUT");
    const own = await t.gql(`{ accessRequests { principal status } }`, { token: ursula });
    expect(own.body.data.accessRequests).toEqual([{ principal: "ursula", status: "APPROVED" }]);
  });

  test("nobody decides their own request, not even an owner", async () => {
    const { body } = await request(owner2, "DEPTH");
    const id = body.data.requestAccess.id;
    const own = await decide(owner2, id);
    expect(codeOf(own.body)).toBe("FORBIDDEN");
    expect(own.body.data.decideAccessRequest).toBeNull();
    expect((await me(owner2)).entitlements).toEqual([]);
    // Another owner may.
    expect((await decide(owner, id, false)).body.data.decideAccessRequest.status).toBe("DENIED");
    expect((await me(owner2)).entitlements).toEqual([]);
  });

  test("an unknown request id is BAD_USER_INPUT", async () => {
    expect(codeOf((await decide(owner, "987654")).body)).toBe("BAD_USER_INPUT");
    expect(codeOf((await decide(owner, "x; drop table grants")).body)).toBe("BAD_USER_INPUT");
  });
});

describe("delayed data for principals without REALTIME", () => {
  const cutoff = () => Date.now() - DELAY_SECONDS * 1000;
  type Q = { eventTime: string; delayed: boolean };
  const QUERY = `query($after: String) {
    quotes(first: 200, after: $after) { nodes { eventTime delayed } pageInfo { hasNextPage endCursor } }
    latestQuotes { eventTime delayed }
    instrument(symbol: "NVDA") { latestQuote { eventTime delayed instrument { latestQuote { eventTime delayed } } } }
  }`;

  function quotesIn(data: Record<string, unknown>): Q[] {
    const out: Q[] = [];
    const walk = (v: unknown) => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === "object") {
        if ("eventTime" in v) out.push(v as Q);
        Object.values(v).forEach(walk);
      }
    };
    walk(data);
    return out;
  }

  test("never a value newer than marketNow - DELAY_SECONDS, through any field, over HTTP", async () => {
    const token = await t.token("dan");
    let after: string | null = null;
    let seen = 0;
    for (let page = 0; page < 20; page++) {
      const limit = cutoff();
      const {
        body,
      }: {
        body: {
          data?: Record<string, unknown> & {
            quotes: { pageInfo: { hasNextPage: boolean; endCursor: string } };
          };
          errors?: unknown;
        };
      } = await t.gql(QUERY, { token, variables: { after } });
      expect(body.errors).toBeUndefined();
      const quotes = quotesIn(body.data!);
      seen += quotes.length;
      for (const q of quotes) {
        expect(Date.parse(q.eventTime)).toBeLessThanOrEqual(limit + 1000);
        expect(q.delayed).toBe(true);
      }
      if (!body.data!.quotes.pageInfo.hasNextPage) break;
      after = body.data!.quotes.pageInfo.endCursor;
    }
    // 30 of the 40 minutes are old enough: 3 symbols x 360 quotes, plus the latest ones.
    expect(seen).toBeGreaterThan(1000);
  });

  test("the latest quote served delayed is the newest old enough one", async () => {
    const token = await t.token("dan");
    const { body } = await t.gql(`{ latestQuotes(symbols: ["AAPL"]) { eventTime delayed } }`, { token });
    // This replica does not ingest: the market's now is the newest trade it has stored.
    const [{ expected }] = await t.platform.db.dataSource.query(
      `SELECT max(event_time) AS expected FROM quotes
       WHERE symbol = 'AAPL' AND event_time <= (SELECT max(event_time) FROM quotes) - $1 * interval '1 second'`,
      [DELAY_SECONDS],
    );
    expect(body.data.latestQuotes[0]).toEqual({ eventTime: expected.toISOString(), delayed: true });
  });

  test("over WebSocket too", async () => {
    const token = await t.token("dan");
    const limit = cutoff();
    const r = await wsQuery(t.ws({ connectionParams: { authorization: `Bearer ${token}` } }), QUERY, {});
    const quotes = quotesIn(r.data as Record<string, unknown>);
    expect(quotes.length).toBeGreaterThan(200);
    expect(quotes.every((q) => q.delayed && Date.parse(q.eventTime) <= limit + 1000)).toBe(true);
  });

  test("with REALTIME, the newest data is served and not marked delayed", async () => {
    await grantEntitlements(t, "rita", [Entitlement.REALTIME]);
    const { body } = await t.gql(
      `{ latestQuotes(symbols: ["AAPL"]) { eventTime delayed } quotes(first: 1) { nodes { eventTime delayed } } }`,
      {
        token: await t.token("rita"),
      },
    );
    expect(body.data.latestQuotes[0].delayed).toBe(false);
    expect(Date.parse(body.data.latestQuotes[0].eventTime)).toBeGreaterThan(cutoff() + 60_000);
    expect(body.data.quotes.nodes[0].delayed).toBe(false);
  });
});

describe("what the schema promises of grants and requests", () => {
  type Grant = {
    id: string;
    principal: string;
    entitlement: string;
    expiresAt: string | null;
    revokedAt: string | null;
  };
  const grantsOf = async (principal?: string): Promise<Grant[]> =>
    (
      await t.gql(
        `query($p: String) { grants(principal: $p) { id principal entitlement expiresAt revokedAt } }`,
        {
          token: steward,
          variables: { p: principal ?? null },
        },
      )
    ).body.data.grants;
  const holders = async (at: Date, principal: string) =>
    (
      await t.gql(`query($at: DateTime!) { entitlementReport(at: $at) { principal entitlement until } }`, {
        token: steward,
        variables: { at: at.toISOString() },
      })
    ).body.data.entitlementReport.filter((h: { principal: string }) => h.principal === principal);
  const grant = (principal: string, expiresAt: Date | null) =>
    t.gql(
      `mutation($p: String!, $x: DateTime) { grantEntitlement(principal: $p, entitlement: REALTIME, expiresAt: $x) { id expiresAt revokedAt } }`,
      { token: owner, variables: { p: principal, x: expiresAt?.toISOString() ?? null } },
    );

  test("grantEntitlement replaces the principal's current grant of the entitlement", async () => {
    const first = (await grant("gwen", null)).body.data.grantEntitlement;
    const expiresAt = new Date(Date.now() + 3_600_000);
    const second = (await grant("gwen", expiresAt)).body.data.grantEntitlement;
    expect(second).toEqual({ id: expect.any(String), expiresAt: expiresAt.toISOString(), revokedAt: null });
    // The unlimited grant is superseded: after the new expiry nobody holds it.
    const list = await grantsOf("gwen");
    expect(list.map((g) => g.id)).toEqual([second.id, first.id]);
    expect(list[1].revokedAt).toEqual(expect.any(String));
    expect(await holders(new Date(), "gwen")).toEqual([
      { principal: "gwen", entitlement: "REALTIME", until: expiresAt.toISOString() },
    ]);
    expect(await holders(new Date(expiresAt.getTime() + 1000), "gwen")).toEqual([]);
    expect((await me(await t.token("gwen"))).entitlements).toEqual(["REALTIME"]);
  });

  test("decideAccessRequest grants until the expiry it is given", async () => {
    const hal = await t.token("hal");
    const { body } = await t.gql(
      `mutation { requestAccess(entitlement: DEPTH, reason: "depth of book") { id } }`,
      { token: hal },
    );
    const expiresAt = new Date(Date.now() + 7_200_000);
    const decided = await t.gql(
      `mutation($id: ID!, $x: DateTime) { decideAccessRequest(id: $id, approve: true, expiresAt: $x) { status } }`,
      { token: owner, variables: { id: body.data.requestAccess.id, x: expiresAt.toISOString() } },
    );
    expect(decided.body.data.decideAccessRequest).toEqual({ status: "APPROVED" });
    expect(await grantsOf("hal")).toEqual([
      {
        id: expect.any(String),
        principal: "hal",
        entitlement: "DEPTH",
        expiresAt: expiresAt.toISOString(),
        revokedAt: null,
      },
    ]);
    expect((await me(hal)).entitlements).toEqual(["DEPTH"]);
    expect(await holders(new Date(expiresAt.getTime() + 1000), "hal")).toEqual([]);
    // An expiry in the past is refused, and the request stays pending.
    const ivy = await t.token("ivy");
    const req = await t.gql(`mutation { requestAccess(entitlement: DEPTH, reason: "x") { id } }`, {
      token: ivy,
    });
    const past = await t.gql(
      `mutation($id: ID!) { decideAccessRequest(id: $id, approve: true, expiresAt: "2020-01-01T00:00:00Z") { status } }`,
      { token: owner, variables: { id: req.body.data.requestAccess.id } },
    );
    expect(codeOf(past.body)).toBe("BAD_USER_INPUT");
    const mine = await t.gql(`{ accessRequests { status } }`, { token: ivy });
    expect(mine.body.data.accessRequests).toEqual([{ status: "PENDING" }]);
  });

  test("accessRequests filters by status; stewards and owners see everyone's, others their own", async () => {
    const users = ["jo", "kim", "lou"];
    const ids: Record<string, string> = {};
    for (const u of users) {
      const { body } = await t.gql(`mutation { requestAccess(entitlement: REALTIME, reason: "r") { id } }`, {
        token: await t.token(u),
      });
      ids[u] = body.data.requestAccess.id;
    }
    const decide = (id: string, approve: boolean) =>
      t.gql(`mutation($id: ID!, $a: Boolean!) { decideAccessRequest(id: $id, approve: $a) { status } }`, {
        token: owner,
        variables: { id, a: approve },
      });
    await decide(ids.kim, true);
    await decide(ids.lou, false);
    type Req = { id: string; principal: string; status: string };
    const list = async (token: string, status?: string): Promise<Req[]> =>
      (
        await t.gql(`query($s: RequestStatus) { accessRequests(status: $s) { id principal status } }`, {
          token,
          variables: { s: status ?? null },
        })
      ).body.data.accessRequests.filter((r: Req) => users.includes(r.principal));
    for (const token of [steward, owner]) {
      expect(await list(token)).toEqual([
        { id: ids.lou, principal: "lou", status: "DENIED" },
        { id: ids.kim, principal: "kim", status: "APPROVED" },
        { id: ids.jo, principal: "jo", status: "PENDING" },
      ]);
      expect((await list(token, "PENDING")).map((r) => r.principal)).toEqual(["jo"]);
      expect((await list(token, "APPROVED")).map((r) => r.principal)).toEqual(["kim"]);
      expect((await list(token, "DENIED")).map((r) => r.principal)).toEqual(["lou"]);
    }
    // Every pending request, of anyone: stewards see all of them.
    const all = (await t.gql(`{ accessRequests(status: PENDING) { status } }`, { token: steward })).body.data
      .accessRequests;
    expect(all.length).toBeGreaterThan(1);
    expect(all.every((r: { status: string }) => r.status === "PENDING")).toBe(true);
    const kim = await t.token("kim");
    expect(await list(kim)).toEqual([{ id: ids.kim, principal: "kim", status: "APPROVED" }]);
    expect(await list(kim, "PENDING")).toEqual([]);
  });

  test("grants are listed newest first, beyond ten of them", async () => {
    for (let k = 0; k < 12; k++) await grant(`many${k}`, null);
    const list = await grantsOf();
    expect(list.length).toBeGreaterThan(12);
    const ids = list.map((g) => BigInt(g.id));
    expect(ids).toEqual([...ids].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)));
    expect(list.slice(0, 12).map((g) => g.principal)).toEqual(
      Array.from({ length: 12 }, (_, k) => `many${11 - k}`),
    );
  });

  test("fieldPolicies lists every coordinate once, sorted", async () => {
    const { body } = await t.gql(`{ fieldPolicies { coordinate } }`, { token: steward });
    const coordinates = body.data.fieldPolicies.map((p: { coordinate: string }) => p.coordinate);
    expect(coordinates.length).toBeGreaterThan(100);
    expect(coordinates).toEqual([...coordinates].sort());
    expect(new Set(coordinates).size).toBe(coordinates.length);
    expect(coordinates).toEqual(
      expect.arrayContaining(["Quote.bid", "Query.grants", "Mutation.grantEntitlement"]),
    );
  });
});
