import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import express, { Router, type Response } from "express";

/** The pages `npm run build` writes (Vite, from web/), and the paths they are served at. */
const PAGES: Record<string, string> = {
  "/": "index.html",
  "/explorer": "explorer.html",
  "/access-log": "access-log.html",
};

/**
 * Nothing is loaded from elsewhere: scripts, styles, fonts and the GraphQL endpoint (HTTP and
 * WebSocket) all come from this server. ECharts and React set inline styles, hence 'unsafe-inline'.
 */
const CSP = [
  "default-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "style-src 'self' 'unsafe-inline'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * The built web assets: dist/web under the package root. Run from dist/src/server or, in tests, from
 * src/server; Vite's manifest tells a build from the web/ sources.
 */
export function webRoot(): string | null {
  for (const dir of [resolve(__dirname, "../../dist/web"), resolve(__dirname, "../../web")])
    if (existsSync(join(dir, ".vite", "manifest.json"))) return dir;
  return null;
}

/** The dashboard at `/`, the GraphQL explorer at `/explorer`, the access log at `/access-log`. */
export function webRouter(root: string | null = webRoot()): Router {
  const router = Router();
  const html = (res: Response, file: string) => {
    res.set({ "cache-control": "no-cache", "content-security-policy": CSP });
    res.sendFile(join(root!, file));
  };
  for (const [path, file] of Object.entries(PAGES))
    router.get(path, (_req, res) => {
      if (root) html(res, file);
      else
        res
          .status(503)
          .type("text/plain")
          .send("The web pages are not built: run `npm run build` (it runs on `npm ci` too).\n");
    });
  if (root)
    router.use(
      "/assets",
      // File names carry a content hash: a cached copy never goes stale.
      express.static(join(root, "assets"), { immutable: true, maxAge: "1y", index: false }),
    );
  return router;
}
