import type { NextFunction, Request, Response } from "express";
import { httpResponseSeconds } from "../metrics";

/** Paths as metric labels: a fixed set, so that no client can grow the metric's series. */
const ROUTES = [
  "/graphql",
  "/export",
  "/healthz",
  "/readyz",
  "/metrics",
  "/assets",
  "/explorer",
  "/access-log",
];

function routeOf(path: string): string {
  if (path === "/") return "/";
  return ROUTES.find((r) => path === r || path.startsWith(r + "/")) ?? "other";
}

/** Times every HTTP response, to its last byte (or the client going away), by route and status. */
export function httpMetrics(req: Request, res: Response, next: NextFunction): void {
  const done = httpResponseSeconds.startTimer();
  // Read now: routers mounted on a path strip it from the request while they handle it.
  const route = routeOf(req.path);
  res.once("close", () => done({ route, status: String(res.statusCode) }));
  next();
}
