import "./style.css";
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

interface Entry {
  seq: number;
  at: string;
  principal: string | null;
  roles: string[];
  operation: string;
  operationName: string | null;
  phase: string | null;
  decision: string;
  denied: string[];
  masked: string[];
  symbols: string[];
  delayed: boolean;
  rowCount: number | null;
  durationMs: number | null;
  errorCode: string | null;
}
interface Filter {
  principal?: string;
  decision?: string;
}

const ENTRY = `seq at principal roles operation operationName phase decision denied masked symbols delayed rowCount durationMs errorCode`;
const PAGE = 50;

const table = document.querySelector<HTMLTableElement>("#log")!;
const tbody = table.querySelector("tbody")!;
const more = document.getElementById("more") as HTMLButtonElement;
const integrity = document.getElementById("integrity")!;

function row(e: Entry): HTMLTableRowElement {
  const list = (xs: string[], n = 3) =>
    xs.length > n ? `${xs.slice(0, n).join(", ")} +${xs.length - n}` : xs.join(", ");
  const op = `${e.operation.toLowerCase()}${e.operationName ? ` ${e.operationName}` : ""}${e.phase ? ` (${e.phase})` : ""}`;
  const gov = [
    e.denied.length ? `denied: ${list(e.denied)}` : "",
    e.masked.length ? `masked: ${list(e.masked)}` : "",
  ]
    .filter(Boolean)
    .join("; ");
  const tr = el(
    "tr",
    { "data-seq": String(e.seq), "data-decision": e.decision, class: `decision-${e.decision.toLowerCase()}` },
    el("td", {}, String(e.seq)),
    el("td", { title: e.at }, e.at.replace("T", " ").slice(0, 23)),
    el("td", {}, e.principal ?? "(unauthenticated)"),
    el("td", {}, e.roles.join(", ")),
    el("td", {}, op),
    el("td", {}, e.decision),
    el("td", {}, gov),
    el("td", {}, list(e.symbols)),
    el("td", {}, e.delayed ? "yes" : ""),
    el("td", {}, e.rowCount == null ? "" : String(e.rowCount)),
    el("td", {}, e.durationMs == null ? "" : e.durationMs.toFixed(1)),
    el("td", {}, e.errorCode ?? ""),
  );
  return tr;
}

const matches = (e: Entry, f: Filter) =>
  (!f.principal || e.principal === f.principal) && (!f.decision || e.decision === f.decision);

function counted(): void {
  table.dataset.rows = String(tbody.rows.length);
}

async function main(): Promise<void> {
  const token = currentToken();
  if (!token) return askForToken();
  const frame = new Frame();
  const onErrors = (e: readonly GqlError[]) => frame.showErrors(e);
  const form = document.getElementById("filters") as HTMLFormElement;
  const principal = document.getElementById("principal") as HTMLInputElement;
  const decision = document.getElementById("decision") as HTMLSelectElement;
  const tail = document.getElementById("tail") as HTMLInputElement;
  let filter: Filter = {};
  let after: string | null = null;

  const { data: me } = await gql<{ me: Me }>(token, `query Me { me { id roles entitlements } }`);
  if (me) frame.signedIn(me.me);

  async function load(reset: boolean): Promise<void> {
    if (reset) after = null;
    const { data, errors } = await gql<{
      accessLog: { nodes: Entry[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } | null;
    }>(
      token!,
      `query AccessLog($first: Int!, $after: String, $filter: AccessLogFilter) {
        accessLog(first: $first, after: $after, filter: $filter) { nodes { ${ENTRY} } pageInfo { hasNextPage endCursor } }
      }`,
      { first: PAGE, after, filter },
    );
    if (errors?.length) onErrors(errors);
    const page = data?.accessLog;
    if (reset) tbody.replaceChildren();
    if (!page) return;
    tbody.append(...page.nodes.map(row));
    after = page.pageInfo.endCursor;
    more.hidden = !page.pageInfo.hasNextPage;
    counted();
  }

  async function verify(): Promise<void> {
    integrity.textContent = "verifying…";
    const { data, errors } = await gql<{
      verifyAccessLog: { ok: boolean; checked: number; firstBrokenSeq: number | null } | null;
    }>(token!, `query Verify { verifyAccessLog { ok checked firstBrokenSeq } }`);
    if (errors?.length) onErrors(errors);
    const v = data?.verifyAccessLog;
    integrity.dataset.ok = v ? String(v.ok) : "";
    integrity.className = `integrity ${v ? (v.ok ? "ok" : "broken") : ""}`;
    integrity.textContent = !v
      ? "not verified"
      : v.ok
        ? `hash chain intact: ${v.checked} entries checked`
        : `hash chain broken at seq ${v.firstBrokenSeq} (${v.checked} entries intact before it)`;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    filter = {
      ...(principal.value.trim() ? { principal: principal.value.trim() } : {}),
      ...(decision.value ? { decision: decision.value } : {}),
    };
    void load(true);
  });
  more.addEventListener("click", () => void load(false));
  document.getElementById("verify")!.addEventListener("click", () => void verify());

  const client = liveClient(token, (state, detail) => frame.connection(state, detail));
  live<{ accessEvents: Entry | null }>(
    client,
    `subscription AccessEvents { accessEvents { ${ENTRY} } }`,
    {},
    (d) => {
      const e = d.accessEvents;
      if (!e || !tail.checked || !matches(e, filter)) return;
      if (tbody.querySelector(`tr[data-seq="${e.seq}"]`)) return;
      tbody.prepend(row(e));
      counted();
    },
    onErrors,
  );
  await Promise.all([load(true), verify()]);
}

main().catch((err: unknown) => {
  console.error(err);
  new Frame().showErrors([{ message: String((err as Error)?.message ?? err) }]);
});
