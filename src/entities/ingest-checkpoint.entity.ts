import { Column, Entity, PrimaryColumn } from "typeorm";

/**
 * Where the ingest of one stream resumes: per symbol, the highest trade id below which every id is
 * stored or quarantined; written in the same transaction as the batch it describes.
 */
@Entity("ingest_checkpoints")
export class IngestCheckpointEntity {
  @PrimaryColumn("text", { primaryKeyConstraintName: "ingest_checkpoints_pkey" })
  stream: string;

  @Column("jsonb", { name: "last_ids", default: () => "'{}'" })
  lastIds: Record<string, number>;

  @Column("timestamptz", { nullable: true })
  watermark: Date | null;

  @Column("timestamptz", { name: "updated_at", default: () => "now()" })
  updatedAt: Date;

  /** The epoch of the writer that last claimed the stream (from `ingest_epochs`); null until one has. */
  @Column("bigint", { nullable: true })
  epoch: string | null;

  /**
   * Part number → the token of the last transaction that part of a batch committed (see
   * IngestWrites.committed): how a writer learns whether a COMMIT it lost the answer to was applied.
   */
  @Column("jsonb", { default: () => "'{}'" })
  commits: Record<string, string>;
}
