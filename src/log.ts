import pino from "pino";

/**
 * The process's logger. Its level follows LOG_LEVEL once the configuration has checked it
 * (`setLogLevel`); until then, a valid LOG_LEVEL or info (an invalid one is reported by the
 * configuration, not by a crash here).
 */
export const log = pino({
  level:
    Object.hasOwn(pino.levels.values, process.env.LOG_LEVEL ?? "") || process.env.LOG_LEVEL === "silent"
      ? process.env.LOG_LEVEL!
      : "info",
  base: undefined,
});

export function setLogLevel(level: string): void {
  log.level = level;
}
