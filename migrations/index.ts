import { InstrumentsQuotes1763700000000 } from "./1763700000000-instruments-quotes";
import { Ingest1763750000000 } from "./1763750000000-ingest";
import { Windows1763760000000 } from "./1763760000000-windows";
import { Governance1763800000000 } from "./1763800000000-governance";
import { AccessLogKeyed1764000000000 } from "./1764000000000-access-log-keyed";
import { QuarantineMarketTime1764000100000 } from "./1764000100000-quarantine-market-time";
import { IngestEpoch1764100000000 } from "./1764100000000-ingest-epoch";
import { WindowChanges1764200000000 } from "./1764200000000-window-changes";
import { IngestCommitTokens1764300000000 } from "./1764300000000-ingest-commit-tokens";

/** Every migration, oldest first. Hand-written; the schema is never synchronized from entities. */
export const migrations = [
  InstrumentsQuotes1763700000000,
  Ingest1763750000000,
  Windows1763760000000,
  Governance1763800000000,
  AccessLogKeyed1764000000000,
  QuarantineMarketTime1764000100000,
  IngestEpoch1764100000000,
  WindowChanges1764200000000,
  IngestCommitTokens1764300000000,
];
