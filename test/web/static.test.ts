import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { webRoot, webRouter } from "../../src/server/static";

// The routes of the web pages, without a browser: what is served where, with which headers.
async function serve(root: string | null): Promise<{ base: string; server: Server }> {
  const app = express().use(webRouter(root));
  const server = createServer(app);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test("the built pages are served at /, /explorer and /access-log, under a same-origin policy", async () => {
  const root = webRoot();
  expect(root).not.toBeNull(); // npm test builds them first (pretest)
  const { base, server } = await serve(root);
  try {
    for (const [path, title] of [
      ["/", "dashboard"],
      ["/explorer", "explorer"],
      ["/access-log", "access log"],
    ]) {
      const res = await fetch(base + path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
      const html = await res.text();
      expect(html).toContain(`<title>tickgraph · ${title}</title>`);
      // Every script and style sheet the page names is one of ours, and is there.
      const assets = [
        ...html.matchAll(
          /<script[^>]*\ssrc="([^"]+)"|<link[^>]*rel="(?:stylesheet|modulepreload)"[^>]*href="([^"]+)"/g,
        ),
      ].map((m) => m[1] ?? m[2]);
      expect(assets.length).toBeGreaterThan(0);
      for (const asset of assets) {
        expect(asset).toMatch(/^\/assets\//);
        const a = await fetch(base + asset);
        expect(a.status).toBe(200);
        expect(a.headers.get("cache-control")).toContain("immutable");
      }
    }
    expect((await fetch(`${base}/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${base}/.vite/manifest.json`)).status).toBe(404);
  } finally {
    server.close();
  }
});

test("without a build, the pages say how to build them", async () => {
  const { base, server } = await serve(null);
  try {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(503);
    expect(await res.text()).toContain("npm run build");
  } finally {
    server.close();
  }
});
