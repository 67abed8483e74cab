import type { DataSource } from "typeorm";

export interface QuarantineRow {
  id: string;
  receivedAt: Date;
  reason: string;
  detail: string | null;
  raw: string;
}

/** Reads of the quarantine (the ingest writes it in its batches). */
export class QuarantineRepo {
  constructor(private readonly ds: DataSource) {}

  /**
   * Newest first, `limit` rows with an id below `beforeId`, of one reason or all; with `notAfter` (a
   * delay cutoff), only rows received at or before it on the market clock.
   */
  page(q: {
    reason?: string | null;
    beforeId?: string;
    notAfter?: Date;
    limit: number;
  }): Promise<QuarantineRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.reason) where.push(`reason = $${params.push(q.reason)}`);
    if (q.beforeId) where.push(`quarantine.id < $${params.push(q.beforeId)}`);
    if (q.notAfter) where.push(`market_at <= $${params.push(q.notAfter)}`);
    return this.ds.query(
      `SELECT quarantine.id::text AS id, received_at AS "receivedAt", reason, detail, raw FROM quarantine
       ${where.length ? "WHERE " + where.join(" AND ") : ""}
       ORDER BY quarantine.id DESC LIMIT $${params.push(q.limit)}`,
      params,
    );
  }

  /** Rows per reason received in [from, to), most frequent first. */
  async countsByReason(from?: Date | null, to?: Date | null): Promise<{ reason: string; count: number }[]> {
    const rows: { reason: string; count: string }[] = await this.ds.query(
      `SELECT reason, count(*)::text AS count FROM quarantine
       WHERE ($1::timestamptz IS NULL OR received_at >= $1) AND ($2::timestamptz IS NULL OR received_at < $2)
       GROUP BY reason ORDER BY count(*) DESC, reason`,
      [from ?? null, to ?? null],
    );
    return rows.map((r) => ({ reason: r.reason, count: Number(r.count) }));
  }
}
