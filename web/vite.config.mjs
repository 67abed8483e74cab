import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

// The dashboard, the GraphQL explorer and the access log, built into dist/web, which the GraphQL
// server serves (src/server/static.ts). Everything is bundled: the pages load nothing from elsewhere.
export default defineConfig({
  root: here("."),
  base: "/",
  publicDir: false,
  logLevel: "warn",
  build: {
    outDir: here("../dist/web"),
    emptyOutDir: true,
    manifest: true,
    chunkSizeWarningLimit: 2000,
    rolldownOptions: {
      // React libraries mark modules "use client", which means nothing outside a server-components build.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
      input: {
        dashboard: here("index.html"),
        explorer: here("explorer.html"),
        accessLog: here("access-log.html"),
      },
    },
  },
});
