import { Router } from "express";
import type { DataSource } from "typeorm";
import { ping } from "../db/database";
import { log } from "../log";
import { registry } from "../metrics";

/** Named readiness checks, each true when that part is ready. */
export type Readiness = () => Promise<Record<string, boolean>>;

/**
 * `/healthz` (the process is up), `/readyz` (database reachable, migrations applied, and whatever else
 * `readiness` checks; 503 naming the failing checks otherwise), `/metrics` (Prometheus text).
 */
export function healthRoutes(dataSource: DataSource, readiness?: Readiness): Router {
  const router = Router();
  router.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  router.get("/readyz", async (_req, res) => {
    const checks: Record<string, boolean> = { database: false };
    try {
      await ping(dataSource);
      checks.database = true;
      checks.migrations = !(await dataSource.showMigrations());
      Object.assign(checks, (await readiness?.()) ?? {});
    } catch (err) {
      log.warn({ err }, "readiness check failed");
    }
    const ready = Object.values(checks).every(Boolean);
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "not ready", checks });
  });
  router.get("/metrics", async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  return router;
}
