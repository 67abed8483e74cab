/**
 * What Postgres refuses in text (NUL) and in jsonb (NUL, and UTF-16 surrogates without their pair):
 * client bytes that would fail the whole statement holding them.
 */
// eslint-disable-next-line no-control-regex -- NUL is exactly what is looked for
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** True when `text` holds something Postgres would refuse. */
export const isUnstorable = (text: string): boolean => {
  UNSTORABLE.lastIndex = 0;
  return UNSTORABLE.test(text);
};

/**
 * `text` with what Postgres refuses written as `\uXXXX` escapes (the rest unchanged), so that any input
 * can be stored and read back as what was sent.
 */
export function storableText(text: string): string {
  if (!isUnstorable(text)) return text;
  return text.replace(UNSTORABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * An instant as text the way GraphQL's DateTime writes it (ISO 8601 in UTC with milliseconds, truncated
 * as JS dates are), so that it goes out as read.
 */
export const isoText = (sql: string): string =>
  `to_char(${sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
