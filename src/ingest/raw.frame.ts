/**
 * The source text of each element of a JSON array, exactly as written. Quarantine keeps rejected input
 * verbatim, and re-serializing a parsed message would change it (number formats, escapes, spacing).
 * Only called for frames that hold a rejected message, so the common path never pays for the scan.
 * Returns null when `text` is not an array (the caller has parsed it already, so that means a bug).
 */
export function splitJsonArray(text: string): string[] | null {
  let i = 0;
  const n = text.length;
  const skipSpace = (): void => {
    while (i < n && (text[i] === " " || text[i] === "\n" || text[i] === "\r" || text[i] === "\t")) i++;
  };
  skipSpace();
  if (text[i] !== "[") return null;
  i++;
  const out: string[] = [];
  let depth = 0;
  let start = -1;
  for (; i < n; i++) {
    const ch = text[i];
    if (ch === '"') {
      if (start < 0) start = i;
      for (i++; i < n && text[i] !== '"'; i++) if (text[i] === "\\") i++;
      continue;
    }
    if (ch === " " || ch === "\n" || ch === "\r" || ch === "\t") continue;
    if (depth === 0 && (ch === "," || ch === "]")) {
      if (start >= 0) out.push(text.slice(start, trimEnd(text, i)));
      start = -1;
      if (ch === "]") return out;
      continue;
    }
    if (start < 0) start = i;
    if (ch === "{" || ch === "[") depth++;
    else if (ch === "}" || ch === "]") depth--;
  }
  return null;
}

function trimEnd(text: string, end: number): number {
  let e = end;
  while (e > 0 && /\s/.test(text[e - 1])) e--;
  return e;
}

/**
 * A decoded msgpack value as JSON text, for the quarantine: event times (Timestamps) as RFC 3339, integers
 * beyond 2^53 (bigints) as exact decimal strings, an undefined as null.
 */
export function jsonRendering(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x)) ?? "null";
}
