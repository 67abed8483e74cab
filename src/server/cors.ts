import cors from "cors";
import type { RequestHandler } from "express";

/** Headers a cross-origin caller may send: the token and JSON, and Apollo Client's own. */
const ALLOWED_HEADERS = [
  "authorization",
  "content-type",
  "apollographql-client-name",
  "apollographql-client-version",
  "x-apollo-operation-name",
  "apollo-require-preflight",
];

/**
 * CORS for the listed origins (`*`: any): preflights answered for GET and POST with the headers above,
 * responses readable by their scripts, with `exposed` headers. A request from any other origin gets no
 * CORS header at all (its preflight goes on to the route, which refuses OPTIONS). None when the list is
 * empty. Tokens travel in a header, never in cookies, so no credentials mode is needed.
 */
export function corsFor(origins: readonly string[], exposed: readonly string[]): RequestHandler | null {
  if (!origins.length) return null;
  const any = origins.includes("*");
  const listed = new Set(origins);
  return cors({
    origin: (origin, done) => done(null, origin && (any || listed.has(origin)) ? origin : false),
    methods: ["GET", "POST"],
    allowedHeaders: ALLOWED_HEADERS,
    exposedHeaders: [...exposed],
    maxAge: 600,
  });
}
