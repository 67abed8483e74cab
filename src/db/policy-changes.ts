/**
 * Every change to grants or field policies is announced on this channel, in its transaction, so each
 * replica drops what it cached: `p:<principal>` for a principal's grants, `fields` for field policies.
 */
export const POLICY_CHANNEL = "tickgraph_policy";

/** A DataSource or a transaction's EntityManager. */
export interface Queryable {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  query(sql: string, params?: unknown[]): Promise<any>;
}

/** Announces a policy change; sent when the transaction of `q` commits. */
export const announcePolicyChange = (q: Queryable, payload: string): Promise<unknown> =>
  q.query(`SELECT pg_notify('${POLICY_CHANNEL}', $1)`, [payload]);
