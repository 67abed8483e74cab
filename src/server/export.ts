import { createHash } from "node:crypto";
import { pipeline } from "node:stream";
import { Router, type NextFunction, type Request, type Response } from "express";
import type { Config } from "../config/config";
import {
  EXPORT_COLUMNS,
  type Dataset,
  type ExportFormat,
  type ExportQuery,
  type ExportsRepo,
  type OpenExport,
} from "../db/exports.sql";
import {
  AuditUnavailableError,
  BadUserInputError,
  ClientError,
  ErrorCode,
  RateLimitedError,
} from "../errors";
import { log } from "../log";
import { exportRows, exportsRunning } from "../metrics";
import type { Governance, OperationMeta } from "../policy/governance";
import type { FieldRegistry } from "../policy/field-registry";
import type { Principal } from "../policy/principal";
import { Access, type PolicySession } from "../policy/session";
import { bearerToken, type TokenVerifier } from "../policy/tokens";
import { checkSymbolCount } from "../resolvers/page";
import { WindowSize } from "../core/market";
import { originOf, type AccessAudit } from "./access-audit";
import { sendRequestError } from "./graphql-http";

/** Response headers that say what an export withheld or delayed (exposed to cross-origin scripts). */
export const EXPORT_HEADERS = {
  rows: "x-tickgraph-rows",
  masked: "x-tickgraph-masked-columns",
  omitted: "x-tickgraph-omitted-columns",
  delayedUntil: "x-tickgraph-delayed-until",
} as const;

/** Each dataset as GraphQL serves it: the root field, its connection's nodes, the node type. */
const DATASETS: Record<
  Dataset,
  { root: string; nodes: string; type: string; params: readonly string[]; delayed: boolean }
> = {
  quotes: {
    root: "Query.quotes",
    nodes: "QuoteConnection.nodes",
    type: "Quote",
    params: ["symbols", "from", "to", "order", "columns"],
    delayed: true,
  },
  "window-aggregates": {
    root: "Query.windowAggregates",
    nodes: "WindowAggregateConnection.nodes",
    type: "WindowAggregate",
    params: ["size", "symbols", "from", "to", "order", "columns"],
    delayed: true,
  },
  "access-log": {
    root: "Query.accessLog",
    nodes: "AccessLogConnection.nodes",
    type: "AccessLogEntry",
    params: ["principal", "decision", "coordinate", "from", "to", "order", "columns"],
    delayed: false,
  },
};

const MEDIA: Record<ExportFormat, string> = {
  csv: "text/csv; charset=utf-8",
  ndjson: "application/x-ndjson; charset=utf-8",
};

const FILE = /^(quotes|window-aggregates|access-log)\.(csv|ndjson)$/;

export interface ExportDeps {
  config: Config;
  governance: Governance;
  /** Null with the policy layer off (a benchmark): nothing is logged. */
  audit: AccessAudit | null;
  verifier: TokenVerifier;
  exports: ExportsRepo;
}

/** A request's parameters, each a string, or a list for the ones that may repeat. */
type Params = Record<string, string | string[] | undefined>;

function single(params: Params, name: string): string | undefined {
  const v = params[name];
  if (Array.isArray(v)) {
    throw new BadUserInputError(`Give ${name} once.`, { argument: name });
  }
  return v === "" ? undefined : v;
}

/** A list parameter: comma-separated, repeatable (`symbols=A,B` or `symbols=A&symbols=B`). */
function list(params: Params, name: string): string[] | undefined {
  const v = params[name];
  if (v === undefined) return undefined;
  return [...new Set((Array.isArray(v) ? v : [v]).flatMap((s) => s.split(",")).map((s) => s.trim()))].filter(
    Boolean,
  );
}

function instant(params: Params, name: string): Date | undefined {
  const v = single(params, name);
  if (v === undefined) return undefined;
  const d = new Date(v);
  if (!/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(d.getTime())) {
    throw new BadUserInputError(
      `${name} must be an ISO-8601 instant, e.g. 2026-01-05T14:30:00Z; got "${v}".`,
      {
        argument: name,
      },
    );
  }
  return d;
}

function oneOf<T extends string>(params: Params, name: string, values: readonly T[]): T | undefined {
  const v = single(params, name);
  if (v === undefined) return undefined;
  if (!(values as readonly string[]).includes(v)) {
    throw new BadUserInputError(`${name} must be one of ${values.join(", ")}; got "${v}".`, {
      argument: name,
    });
  }
  return v as T;
}

/** What an export will send, as decided for its caller. */
interface Plan {
  query: ExportQuery;
  masked: string[];
  omitted: string[];
}

/**
 * Reads an export's parameters and decides it for `session` as GraphQL would decide the same fields:
 * the root field and its nodes must be readable (FORBIDDEN otherwise); columns asked for by name must
 * each be readable (FORBIDDEN naming them), while by default every readable column is sent and the
 * others are left out; a column needing an entitlement the caller lacks (DEPTH) is sent empty; without
 * REALTIME, rows stop at the delay cutoff on the market clock, as the queries' do.
 */
function plan(
  dataset: Dataset,
  format: ExportFormat,
  params: Params,
  session: PolicySession,
  fields: FieldRegistry,
  config: Config,
): Plan {
  // The request is read whole first: a malformed one is refused before anything is decided.
  const spec = DATASETS[dataset];
  for (const [name, value] of Object.entries(params)) {
    if (!spec.params.includes(name)) {
      throw new BadUserInputError(
        `Unknown parameter "${name}": ${dataset} exports take ${spec.params.join(", ")}.`,
        { argument: name },
      );
    }
    for (const v of Array.isArray(value) ? value : [value])
      if (typeof v === "string" && v.includes("\u0000"))
        throw new BadUserInputError("Parameters may not contain the NUL character.", { argument: name });
  }
  const all = Object.keys(EXPORT_COLUMNS[dataset]);
  const asked = list(params, "columns");
  if (asked) {
    const unknown = asked.filter((c) => !all.includes(c));
    if (unknown.length || !asked.length) {
      throw new BadUserInputError(
        `Unknown column${unknown.length > 1 ? "s" : ""} ${unknown.join(", ") || "(none given)"}: ${dataset} has ${all.join(", ")}.`,
        { argument: "columns" },
      );
    }
  }
  const from = instant(params, "from");
  const to = instant(params, "to");
  if (from && to && from > to)
    throw new BadUserInputError("from must not be after to.", { argument: "from" });
  const query: ExportQuery = {
    dataset,
    format,
    columns: [],
    order: oneOf(params, "order", ["ASC", "DESC"] as const) ?? "ASC",
  };
  if (from) query.from = from;
  if (to) query.to = to;
  if (dataset === "access-log") {
    const principal = single(params, "principal");
    const decision = oneOf(params, "decision", ["ALLOWED", "PARTIAL", "DENIED"] as const);
    const coordinate = single(params, "coordinate");
    if (principal) query.principal = principal;
    if (decision) query.decision = decision;
    if (coordinate) query.coordinate = coordinate;
  } else {
    const symbols = list(params, "symbols");
    if (symbols) {
      checkSymbolCount(symbols, config.limits.maxPageSize);
      query.symbols = symbols;
    }
  }
  if (dataset === "window-aggregates") {
    const size = oneOf(params, "size", Object.values(WindowSize));
    if (!size) {
      throw new BadUserInputError(`size is required: one of ${Object.values(WindowSize).join(", ")}.`, {
        argument: "size",
      });
    }
    query.size = size;
  }

  // Then decided as GraphQL decides `{ root { nodes { columns } } }`.
  for (const coordinate of [spec.root, spec.nodes]) {
    const id = fields.field(coordinate)!.id;
    if (session.decide(id) !== Access.ALLOW) throw session.forbidden(id);
  }
  const idOf = (c: string) => fields.field(`${spec.type}.${c}`)!.id;
  const readable = (c: string) => fields.rank(idOf(c)) <= session.readable;
  const omitted = asked ? [] : all.filter((c) => !readable(c));
  const columns = (asked ?? all.filter(readable)).map((name) => ({
    name,
    access: session.decide(idOf(name)),
  }));
  const denied = columns.filter((c) => c.access === Access.DENY);
  if (denied.length) {
    const error = session.forbidden(idOf(denied[0].name));
    if (denied.length === 1) throw error;
    throw new ClientError(
      ErrorCode.FORBIDDEN,
      `Not allowed to read ${denied.map((c) => `${spec.type}.${c.name}`).join(", ")}: ${error.message.replace(/^[^:]*: /, "")}`,
      { coordinates: denied.map((c) => `${spec.type}.${c.name}`) },
      403,
    );
  }
  query.columns = columns.map((c) => ({ name: c.name, masked: c.access === Access.MASK }));
  for (const s of query.symbols ?? []) session.touch(s);
  if (spec.delayed) {
    const cutoff = session.delayCutoff();
    if (cutoff) query.notAfter = cutoff;
  }
  return {
    query,
    masked: columns.filter((c) => c.access === Access.MASK).map((c) => c.name),
    omitted,
  };
}

/**
 * `GET /export/{quotes,window-aggregates,access-log}.{csv,ndjson}`: what the paged queries serve, as one
 * file streamed from Postgres, for tools that read a URL (Excel or Power BI "From Web", pandas
 * `read_csv`). Same bearer token, filters and governance as the queries; one access-log entry each,
 * written before the first row leaves (fail closed), with the rows the export holds.
 */
export function exportRouter(deps: ExportDeps): Router {
  const { config, governance, audit, verifier, exports } = deps;
  const router = Router();
  let running = 0;

  router.get("/:file", async (req: Request, res: Response, next: NextFunction) => {
    // Express routes HEAD here too; a HEAD would count and log an export it never sends.
    if (req.method === "HEAD") return next();
    const startedAt = performance.now();
    const origin = originOf(req);
    const file = String(req.params.file);
    const match = FILE.exec(file);
    let principal: Principal;
    try {
      principal = await verifier.verify(bearerToken(req.headers.authorization));
    } catch (err) {
      void audit?.logRefusal(null, origin, {}, ErrorCode.UNAUTHENTICATED, startedAt);
      return sendRequestError(req, res, 401, (err as Error).message, ErrorCode.UNAUTHENTICATED);
    }
    if (!match) {
      void audit?.logRefusal(principal, origin, {}, "HTTP_404", startedAt);
      return sendRequestError(
        req,
        res,
        404,
        `No export named ${file}: use quotes, window-aggregates or access-log, each .csv or .ndjson.`,
      );
    }
    const [, dataset, format] = match as unknown as [string, Dataset, ExportFormat];
    const meta: OperationMeta = {
      kind: "QUERY",
      name: `export ${file}`,
      hash: createHash("sha256").update(req.originalUrl).digest("hex"),
      ...origin,
    };
    const session = await governance.open(principal);
    /** Refuses the export with `error`, logged first (503 instead when the entry cannot be written). */
    const refuse = async (error: ClientError) => {
      const status = (error.extensions.http as { status?: number } | undefined)?.status ?? 400;
      const code = error.extensions.code as ErrorCode;
      try {
        await audit?.logExport(
          meta,
          session,
          { errorCode: code, executed: false, rowCount: null },
          startedAt,
        );
      } catch (err) {
        const e = err as AuditUnavailableError;
        return sendRequestError(req, res, 503, e.message, ErrorCode.AUDIT_UNAVAILABLE);
      }
      const { http: _h, code: _c, ...extensions } = error.extensions;
      res
        .status(status)
        .type("application/json")
        .send(JSON.stringify({ errors: [{ message: error.message, extensions: { ...extensions, code } }] }));
    };

    let decided: Plan;
    try {
      decided = plan(dataset, format, req.query as Params, session, governance.fields, config);
    } catch (err) {
      if (err instanceof ClientError) return refuse(err);
      throw err;
    }
    if (running >= config.limits.maxExports) {
      res.set("retry-after", "5");
      return refuse(
        new RateLimitedError(
          `${config.limits.maxExports} exports are running on this server (MAX_EXPORTS): try again shortly.`,
        ),
      );
    }
    running++;
    exportsRunning.inc();
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      running--;
      exportsRunning.dec();
    };
    let open: OpenExport;
    try {
      open = await exports.open(decided.query);
    } catch (err) {
      end();
      // Not the client's doing (the database failed): still this export's one entry, then a masked 500.
      await audit
        ?.logExport(
          meta,
          session,
          { errorCode: ErrorCode.INTERNAL_SERVER_ERROR, executed: false, rowCount: null },
          startedAt,
        )
        .catch(() => {});
      throw err;
    }
    session.rows = open.rows;
    session.rootServed = 1;
    for (const s of open.symbols) session.touch(s);
    try {
      await audit?.logExport(meta, session, { errorCode: null, executed: true }, startedAt);
    } catch (err) {
      await open.cancel();
      end();
      const e = err as AuditUnavailableError;
      return sendRequestError(req, res, 503, e.message, ErrorCode.AUDIT_UNAVAILABLE);
    }
    const { masked, omitted, query } = decided;
    res.status(200).set({
      "content-type": MEDIA[format],
      "content-disposition": `attachment; filename="${file}"`,
      "cache-control": "no-store",
      [EXPORT_HEADERS.rows]: String(open.rows),
      ...(masked.length ? { [EXPORT_HEADERS.masked]: masked.join(",") } : {}),
      ...(omitted.length ? { [EXPORT_HEADERS.omitted]: omitted.join(",") } : {}),
      ...(query.notAfter ? { [EXPORT_HEADERS.delayedUntil]: query.notAfter.toISOString() } : {}),
    });
    pipeline(open.stream(), res, (err) => {
      end();
      if (!err) exportRows.inc({ dataset }, open.rows);
      else if (!res.writableFinished) log.warn({ err: err.message, file }, "export cut off before its end");
    });
  });

  router.all("/:file", async (req, res) => {
    const principal = await verifier.verify(bearerToken(req.headers.authorization)).catch(() => null);
    void audit?.logRefusal(principal, originOf(req), {}, ErrorCode.BAD_REQUEST, performance.now());
    res.set("allow", "GET");
    sendRequestError(req, res, 405, `${req.method} is not allowed here: exports are read by GET.`);
  });
  return router;
}
