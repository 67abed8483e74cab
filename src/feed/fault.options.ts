/**
 * Faults the mock feed injects, so the ingest path can be tested against a misbehaving provider.
 * Probabilities apply per trade except `slow` (per tick of the generator loop).
 */
export interface FaultOptions {
  /** Probability that a malformed frame or message is sent next to a trade (the trade itself is sent intact). @default 0 */
  malformed?: number;
  /** Probability that a trade is sent a second time, unchanged, in the next batch. @default 0 */
  duplicate?: number;
  /** Probability that a trade is held back and sent after the next trade of its symbol (at most 2 s wall later). @default 0 */
  outoforder?: number;
  /** Probability that a trade's event time lies 60–120 simulated seconds in the past. @default 0 */
  late?: number;
  /** Drop every connection this often (wall ms); unset = never. @default undefined */
  disconnectMs?: number;
  /** Probability per tick that the stream stalls for 0.2–2 s wall, then delivers the backlog at once. @default 0 */
  slow?: number;
}

const PROBABILITIES = ["malformed", "duplicate", "outoforder", "late", "slow"] as const;
const NAMES = [...PROBABILITIES, "disconnect"];

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses `malformed=0.01,duplicate=0.01,outoforder=0.01,late=0.005,disconnect=30s,slow=0.1`.
 * Probabilities are numbers from 0 to 1; `disconnect` is a duration (`500ms`, `30s`, `2m`, `1h`; a bare
 * number is seconds). An empty string or `none` means no faults. Throws an Error naming the bad part.
 */
export function parseFaults(spec: string): FaultOptions {
  const out: FaultOptions = {};
  const trimmed = spec.trim();
  if (trimmed === "" || trimmed === "none") return out;
  const seen = new Set<string>();
  for (const raw of trimmed.split(",")) {
    const part = raw.trim();
    const eq = part.indexOf("=");
    if (eq < 0) throw new Error(`fault "${part}" has no value: write name=value, e.g. malformed=0.01`);
    const name = part.slice(0, eq).trim().toLowerCase();
    const value = part.slice(eq + 1).trim();
    if (!NAMES.includes(name))
      throw new Error(`unknown fault "${name}" in "${part}": use one of ${NAMES.join(", ")}`);
    if (seen.has(name)) throw new Error(`fault "${name}" is given twice`);
    seen.add(name);
    if (name === "disconnect") {
      const m = DURATION.exec(value);
      const ms = m ? Number(m[1]) * UNIT_MS[m[2] ?? "s"] : NaN;
      if (!(ms >= 1)) throw new Error(`fault "${part}": use a positive duration like 30s, 500ms or 2m`);
      out.disconnectMs = ms;
    } else {
      const p = value === "" ? NaN : Number(value);
      if (!(p >= 0 && p <= 1))
        throw new Error(`fault "${part}": the probability must be a number from 0 to 1`);
      out[name as (typeof PROBABILITIES)[number]] = p;
    }
  }
  return out;
}

/** Checks options given as an object (the CLI parses strings; library callers may pass objects). */
export function checkFaults(f: FaultOptions): FaultOptions {
  for (const name of PROBABILITIES) {
    const p = f[name];
    if (p !== undefined && !(p >= 0 && p <= 1))
      throw new RangeError(`faults.${name} must be from 0 to 1, got ${p}`);
  }
  if (f.disconnectMs !== undefined && !(f.disconnectMs >= 1)) {
    throw new RangeError(`faults.disconnectMs must be a positive number of ms, got ${f.disconnectMs}`);
  }
  return f;
}

/** The inverse of parseFaults, for logs and `--help`. */
export function formatFaults(f: FaultOptions): string {
  const parts: string[] = [];
  for (const name of PROBABILITIES) if (f[name]) parts.push(`${name}=${f[name]}`);
  if (f.disconnectMs) parts.push(`disconnect=${f.disconnectMs}ms`);
  return parts.length ? parts.join(",") : "none";
}
