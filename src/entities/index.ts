import { AccessLogEntity } from "./access-log.entity";
import { AccessRequestEntity } from "./access-request.entity";
import { FieldPolicyEntity } from "./field-policy.entity";
import { GrantEntity } from "./grant.entity";
import { IngestCheckpointEntity } from "./ingest-checkpoint.entity";
import { InstrumentEntity } from "./instrument.entity";
import { PaneEntity } from "./pane.entity";
import { QuarantineEntity } from "./quarantine.entity";
import { QuoteEntity } from "./quote.entity";
import { WindowAggregateEntity } from "./window-aggregate.entity";
import { WindowProgressEntity } from "./window-progress.entity";

export {
  AccessLogEntity,
  AccessRequestEntity,
  FieldPolicyEntity,
  GrantEntity,
  IngestCheckpointEntity,
  InstrumentEntity,
  PaneEntity,
  QuarantineEntity,
  QuoteEntity,
  WindowAggregateEntity,
  WindowProgressEntity,
};

/** Every table, as an entity matching the migrations exactly (a test fails when they drift apart). */
export const entities = [
  AccessLogEntity,
  AccessRequestEntity,
  FieldPolicyEntity,
  GrantEntity,
  IngestCheckpointEntity,
  InstrumentEntity,
  PaneEntity,
  QuarantineEntity,
  QuoteEntity,
  WindowAggregateEntity,
  WindowProgressEntity,
];
