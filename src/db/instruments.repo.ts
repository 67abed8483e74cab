import type { DataSource } from "typeorm";
import { InstrumentEntity } from "../entities";
import type { InstrumentRow } from "./market.repo";

const UPSERT_CHUNK = 5000;

/** The instrument universe as the feed's reference data gives it. */
export class InstrumentsRepo {
  constructor(private readonly ds: DataSource) {}

  /** Adds new instruments and updates the names, exchanges and sectors of known ones. */
  async upsert(rows: readonly InstrumentRow[]): Promise<void> {
    const repo = this.ds.getRepository(InstrumentEntity);
    // Four parameters a row: chunks stay well under Postgres's 65,535 per statement.
    for (let k = 0; k < rows.length; k += UPSERT_CHUNK)
      await repo.upsert(
        rows
          .slice(k, k + UPSERT_CHUNK)
          .map((r) => ({ symbol: r.symbol, name: r.name, exchange: r.exchange, sector: r.sector })),
        { conflictPaths: ["symbol"] },
      );
  }
}
