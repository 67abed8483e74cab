import pino from "pino";

/** The process's logger; its level follows LOG_LEVEL (set by `setLogLevel` once config is read). */
export const log = pino({ level: process.env.LOG_LEVEL || "info", base: undefined });

export function setLogLevel(level: string): void {
  log.level = level;
}
