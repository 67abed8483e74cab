import { Column, Entity, Index, PrimaryColumn } from "typeorm";

/**
 * One access-log entry: append-only (triggers refuse UPDATE, DELETE and TRUNCATE) and hash-chained
 * (`hash` = HMAC of `prev_hash` and the canonical entry under the deployment's audit key).
 */
@Entity("access_log")
@Index("access_log_principal_idx", ["principal", "seq"])
@Index("access_log_at_idx", ["at"])
export class AccessLogEntity {
  @PrimaryColumn("bigint", { primaryKeyConstraintName: "access_log_pkey" })
  seq: string;

  @Column("timestamptz")
  at: Date;

  @Column("text", { nullable: true })
  principal: string | null;

  @Column("text", { array: true })
  roles: string[];

  @Column("text", { nullable: true })
  client: string | null;

  @Column("text", { nullable: true })
  ip: string | null;

  @Column("text")
  operation: string;

  @Column("text", { name: "operation_name", nullable: true })
  operationName: string | null;

  @Column("text", { name: "operation_hash" })
  operationHash: string;

  @Column("text", { nullable: true })
  phase: string | null;

  @Column("text", { array: true })
  allowed: string[];

  @Column("text", { array: true })
  masked: string[];

  @Column("text", { array: true })
  denied: string[];

  @Column("text", { array: true })
  symbols: string[];

  @Column("boolean")
  delayed: boolean;

  @Column("text")
  decision: string;

  @Column("text", { name: "error_code", nullable: true })
  errorCode: string | null;

  @Column("integer", { name: "row_count", nullable: true })
  rowCount: number | null;

  @Column("double precision", { name: "duration_ms", nullable: true })
  durationMs: number | null;

  @Column("text", { name: "prev_hash" })
  prevHash: string;

  @Column("text")
  hash: string;

  @Column("integer", { nullable: true })
  occurrences: number | null;

  @Column("boolean", { default: false })
  keyed: boolean;
}
