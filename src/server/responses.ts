import type { FormattedExecutionResult } from "graphql";
import { ErrorCode } from "../errors";

/**
 * Each HTTP result serialized once: its size checked against the cap (a larger one is replaced by a
 * RESPONSE_TOO_LARGE error before it is logged or sent), its bytes kept for Apollo's `stringifyResult`.
 */
export class ResponseBytes {
  /** The bytes of a result, by its data (or errors) object: Apollo hands stringifyResult a copy that shares them. */
  private readonly serialized = new WeakMap<object, string>();

  constructor(private readonly maxBytes: number) {}

  /**
   * Serializes `result` (Apollo's field order); returns the replacement when it is over the cap, or over
   * `left` bytes when less than the cap is left (of a batch's responses).
   */
  cap(result: FormattedExecutionResult, left = this.maxBytes): FormattedExecutionResult | null {
    const text = serialize(result);
    if (withinBytes(text, Math.min(left, this.maxBytes))) {
      const key = result.data ?? result.errors;
      if (key) this.serialized.set(key, text);
      return null;
    }
    return tooLarge(this.maxBytes);
  }

  /** Apollo's `stringifyResult`: the bytes serialized for the cap, when they still stand. */
  readonly stringify = (value: FormattedExecutionResult): string => {
    const key = value.data ?? value.errors;
    const text = key && this.serialized.get(key);
    return text || serialize(value);
  };
}

const serialize = (r: FormattedExecutionResult): string =>
  JSON.stringify({ errors: r.errors, data: r.data, extensions: r.extensions });

/** Whether `text` fits in `max` bytes of UTF-8 (counted only when its length alone cannot tell). */
export const withinBytes = (text: string, max: number): boolean =>
  text.length * 3 <= max || Buffer.byteLength(text) <= max;

/** The result sent instead of one over `max` bytes. */
export function tooLarge(max: number): FormattedExecutionResult {
  return {
    errors: [
      {
        message: `The response would exceed ${max} bytes (MAX_RESPONSE_BYTES): ask for fewer rows or fields, or page.`,
        extensions: { code: ErrorCode.RESPONSE_TOO_LARGE, limit: max },
      },
    ],
  };
}
