import { isRecord } from "../core/records";
import { unpack } from "../feed/msgpack";
import type { RawFrame } from "../feed/protocol";
import { log } from "../log";
import type { BatchWriter, TradeSource } from "./batch.writer";
import { jsonRendering, splitJsonArray } from "./raw.frame";
import type { IngestStats } from "./stats";
import { RejectReason, type Validator } from "./validator";

/**
 * Decodes stream frames and routes each data message by the validator's verdict: to the writer, to the
 * quarantine (with its text as received), or to the duplicate count. Nothing is dropped unaccounted.
 */
export class Router {
  constructor(
    private readonly validator: Validator,
    private readonly writer: BatchWriter,
    private readonly stats: IngestStats,
  ) {}

  /**
   * Judges one data message and routes it. `raw` gives its text for the quarantine; `note` is added to a
   * rejection's detail.
   */
  message(m: unknown, raw: () => string, receivedMs: number, source: TradeSource, note = ""): void {
    const v = this.validator.check(m);
    switch (v.kind) {
      case "trade":
        return this.writer.addTrade(v.trade, receivedMs, source);
      case "quote":
        return this.stats.quote();
      case "duplicate":
        return this.stats.duplicate();
      case "reject":
        return this.writer.addQuarantine(
          raw(),
          v.reason,
          v.detail + note,
          receivedMs,
          isRecord(m) && typeof m.S === "string" ? m.S : undefined,
        );
    }
  }

  /** One stream frame: an array of messages, JSON or msgpack; control messages are not data. */
  frame(frame: RawFrame, receivedMs: number): void {
    let parsed: unknown;
    try {
      parsed = frame.binary ? unpack(frame.data) : JSON.parse(frame.text);
    } catch {
      this.stats.received("stream");
      // Bytes that do not decode have no text of their own: kept as base64, which restores them exactly.
      return frame.binary
        ? this.writer.addQuarantine(
            frame.data.toString("base64"),
            RejectReason.MALFORMED,
            "frame is not msgpack (binary frame, kept as base64)",
            receivedMs,
          )
        : this.writer.addQuarantine(frame.text, RejectReason.MALFORMED, "frame is not JSON", receivedMs);
    }
    // A msgpack message has no text: its JSON rendering is kept instead (event times as RFC 3339).
    const note = frame.binary ? " (msgpack message, kept as its JSON rendering)" : "";
    if (!Array.isArray(parsed)) {
      this.stats.received("stream");
      return this.writer.addQuarantine(
        frame.binary ? jsonRendering(parsed) : frame.text,
        RejectReason.MALFORMED,
        `frame is not an array${note}`,
        receivedMs,
      );
    }
    let parts: string[] | null | undefined;
    const rawOf = (k: number, m: unknown): string => {
      if (frame.binary) return jsonRendering(m);
      return (parts === undefined ? (parts = splitJsonArray(frame.text)) : parts)?.[k] ?? JSON.stringify(m);
    };
    let data = 0;
    for (let k = 0; k < parsed.length; k++) {
      const m: unknown = parsed[k];
      if (isRecord(m) && (m.T === "success" || m.T === "subscription" || m.T === "error")) {
        if (m.T === "error") log.warn({ code: m.code, msg: m.msg }, "feed reported an error");
        continue;
      }
      data++;
      this.message(m, () => rawOf(k, m), receivedMs, "feed", note);
    }
    this.stats.received("stream", data);
  }
}
