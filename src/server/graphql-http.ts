import type { NextFunction, Request, Response } from "express";
import Negotiator from "negotiator";
import { randomUUID } from "node:crypto";
import { ErrorCode } from "../errors";
import { log } from "../log";

/** The two media types of GraphQL over HTTP. */
export const JSON_MEDIA = "application/json";
export const GRAPHQL_RESPONSE_MEDIA = "application/graphql-response+json";

/** Deepest nesting a request body may have (variables, extensions): far beyond any real input. */
export const MAX_BODY_DEPTH = 64;

/**
 * The media type a response to `accept` is sent as, as Apollo Server chooses it: application/json when
 * both are acceptable (or the header is missing, or accepts neither), else the GraphQL response type.
 */
export function responseMediaType(accept: string | null | undefined): string {
  if (!accept) return JSON_MEDIA;
  return (
    new Negotiator({ headers: { accept } }).mediaType([JSON_MEDIA, GRAPHQL_RESPONSE_MEDIA]) ?? JSON_MEDIA
  );
}

/**
 * Statuses an error may set whatever the media type: authentication, rate limits, availability, and a
 * mutation sent by GET (the spec asks 405 for it).
 */
const KEPT_STATUSES = new Set([401, 403, 405, 429, 503]);

/**
 * The status of a GraphQL response, as the GraphQL-over-HTTP spec asks: with data, 200; a request error
 * (no data) is 200 under application/json and 4xx under application/graphql-response+json. Statuses
 * that are about the caller or the method rather than the document (401, 403, 405, 429, 503) stand
 * under both.
 */
export function graphqlStatus(opts: { hasData: boolean; status: number | undefined; media: string }): number {
  const { hasData, status, media } = opts;
  if (hasData) return 200;
  if (status !== undefined && KEPT_STATUSES.has(status)) return status;
  if (media === JSON_MEDIA) return 200;
  return status !== undefined && status >= 400 && status < 500 ? status : 400;
}

/** Sends one request error as a GraphQL response in the media type the client accepts. */
export function sendRequestError(
  req: Request,
  res: Response,
  status: number,
  message: string,
  code: ErrorCode = ErrorCode.BAD_REQUEST,
): void {
  res
    .status(status)
    .type(responseMediaType(req.headers.accept))
    .send(JSON.stringify({ errors: [{ message, extensions: { code } }] }));
}

/** Whether `value` nests deeper than `max` levels of arrays and objects (iterative: no stack to overflow). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * The GraphQL URL opened in a browser (a GET preferring HTML, which no GraphQL client sends) goes to the
 * explorer, instead of answering a JSON error. A `#token=…` fragment follows the redirect.
 */
export function explorerForBrowsers(req: Request, res: Response, next: NextFunction): void {
  const accept = req.headers.accept;
  const html =
    !!accept &&
    new Negotiator({ headers: { accept } }).mediaType([JSON_MEDIA, GRAPHQL_RESPONSE_MEDIA, "text/html"]) ===
      "text/html";
  if (html) return res.redirect(302, "/explorer");
  next();
}

/** Only GET and POST reach GraphQL: anything else is 405 with the methods allowed. */
export function allowGetAndPost(req: Request, res: Response, next: NextFunction): void {
  if (req.method === "GET" || req.method === "POST") return next();
  res.set("allow", "GET, POST");
  sendRequestError(req, res, 405, `${req.method} is not allowed here: send GraphQL by GET or POST.`);
}

/** Refuses a body nested beyond MAX_BODY_DEPTH before anything walks it recursively. */
export function refuseDeepBodies(req: Request, res: Response, next: NextFunction): void {
  if (!nestsDeeperThan(req.body, MAX_BODY_DEPTH)) return next();
  sendRequestError(req, res, 400, `The request nests deeper than ${MAX_BODY_DEPTH} levels.`);
}

/** body-parser's errors, by their `type`: what the client did and the status that says so. */
const BODY_ERRORS: Record<string, [number, string]> = {
  "entity.parse.failed": [400, "The request body is not valid JSON."],
  "entity.too.large": [413, "The request body is too large."],
  "charset.unsupported": [415, "The request body's charset is not supported: send UTF-8."],
  "encoding.unsupported": [415, "The request body's content encoding is not supported."],
  "request.aborted": [400, "The request was aborted."],
  "request.size.invalid": [400, "The request body's size does not match its content-length."],
};

/** Answers body-parser's errors (and any other) as GraphQL JSON errors, never as an HTML stack trace. */
export function graphqlErrorHandler(err: unknown, req: Request, res: Response, next: NextFunction): void {
  if (res.headersSent) return next(err);
  const type = (err as { type?: string }).type;
  const known = type ? BODY_ERRORS[type] : undefined;
  if (known) {
    const [status, message] = known;
    const detail = status === 413 ? ` The limit is ${(err as { limit?: number }).limit} bytes.` : "";
    return sendRequestError(req, res, status, message + detail);
  }
  next(err);
}

/** The last handler of the app: an unexpected error is logged with an id and answered with that id only. */
export function internalErrorHandler(err: unknown, req: Request, res: Response, next: NextFunction): void {
  if (res.headersSent) return next(err);
  const errorId = randomUUID();
  log.error({ err, errorId, path: req.path }, "unexpected error");
  res
    .status(500)
    .type(responseMediaType(req.headers.accept))
    .send(
      JSON.stringify({
        errors: [
          {
            message: `Internal server error (id ${errorId}).`,
            extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR, errorId },
          },
        ],
      }),
    );
}
