import type { DataSource } from "typeorm";
import { FieldPolicyEntity } from "../entities";
import type { Classification } from "../core/access";
import { announcePolicyChange } from "./policy-changes";

/** A coordinate's current classification, as a steward last set it. */
export type FieldPolicyRow = Pick<FieldPolicyEntity, "coordinate" | "level" | "updatedBy" | "updatedAt">;

/** Run-time field classification: every change a new row, the latest per coordinate in force. */
export class FieldPoliciesRepo {
  constructor(private readonly ds: DataSource) {}

  /** The current level of every reclassified coordinate, and the revision (max id) it reflects. */
  async current(): Promise<{ rows: FieldPolicyRow[]; revision: string }> {
    const rows = await this.ds
      .getRepository(FieldPolicyEntity)
      .createQueryBuilder("p")
      .distinctOn(["p.coordinate"])
      .orderBy("p.coordinate")
      // The bigint column itself: its text would sort "9" above "10".
      .addOrderBy("p.id", "DESC")
      .getMany();
    const revision = rows.reduce((max, r) => (BigInt(r.id) > BigInt(max) ? r.id : max), "0");
    return { rows, revision };
  }

  classify(coordinate: string, level: Classification, by: string): Promise<void> {
    return this.ds.transaction(async (m) => {
      await m.insert(FieldPolicyEntity, { coordinate, level, updatedBy: by });
      await announcePolicyChange(m, "fields");
    });
  }
}
