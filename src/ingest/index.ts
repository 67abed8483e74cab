/**
 * The ingest loop: feed stream → validator → batched writes (trades, panes, quarantine, checkpoint), with
 * REST backfill after every reconnect or restart. See docs/ARCHITECTURE.md.
 */
export {
  Ingest,
  startIngest,
  type CommitEvent,
  type CommitListener,
  type IngestCounts,
  type IngestOptions,
  type IngestState,
  type IngestStatus,
} from "./ingest";
export type { InDoubtPart } from "./batch.writer";
export { RejectReason } from "./validator";
