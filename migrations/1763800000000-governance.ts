import { MigrationInterface, QueryRunner } from "typeorm";

/** Grants, access requests, run-time field classification and the append-only, hash-chained access log. */
export class Governance1763800000000 implements MigrationInterface {
  name = "Governance1763800000000";

  async up(q: QueryRunner): Promise<void> {
    // Revocation sets revoked_at and never deletes, so `entitlementReport(at:)` can answer for the past.
    await q.query(`
      CREATE TABLE grants (
        id          bigserial PRIMARY KEY,
        principal   text NOT NULL,
        entitlement text NOT NULL CHECK (entitlement IN ('REALTIME', 'DEPTH')),
        granted_by  text NOT NULL,
        granted_at  timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz,
        revoked_at  timestamptz,
        revoked_by  text,
        request_id  bigint,
        CHECK (granted_by <> principal)
      )`);
    // At most one unrevoked grant per pair; the per-operation entitlement lookup probes this index.
    await q.query(
      `CREATE UNIQUE INDEX grants_current_key ON grants (principal, entitlement) WHERE revoked_at IS NULL`,
    );
    await q.query(`CREATE INDEX grants_principal_idx ON grants (principal, granted_at)`);

    await q.query(`
      CREATE TABLE access_requests (
        id           bigserial PRIMARY KEY,
        principal    text NOT NULL,
        entitlement  text NOT NULL CHECK (entitlement IN ('REALTIME', 'DEPTH')),
        reason       text NOT NULL,
        status       text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'APPROVED', 'DENIED')),
        requested_at timestamptz NOT NULL DEFAULT now(),
        decided_by   text,
        decided_at   timestamptz,
        note         text,
        CHECK (decided_by IS NULL OR decided_by <> principal)
      )`);
    await q.query(
      `CREATE UNIQUE INDEX access_requests_pending_key ON access_requests (principal, entitlement)
       WHERE status = 'PENDING'`,
    );

    // Every reclassification is a new row: the table is its own history, and max(id) is the policy
    // revision that each operation compares with its cached copy.
    await q.query(`
      CREATE TABLE field_policies (
        id         bigserial PRIMARY KEY,
        coordinate text NOT NULL,
        level      text NOT NULL CHECK (level IN ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED')),
        updated_by text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX field_policies_coordinate_idx ON field_policies (coordinate, id)`);

    await q.query(`
      CREATE TABLE access_log (
        seq            bigint PRIMARY KEY,
        at             timestamptz NOT NULL,
        principal      text,
        roles          text[] NOT NULL,
        client         text,
        ip             text,
        operation      text NOT NULL,
        operation_name text,
        operation_hash text NOT NULL,
        phase          text,
        allowed        text[] NOT NULL,
        masked         text[] NOT NULL,
        denied         text[] NOT NULL,
        symbols        text[] NOT NULL,
        delayed        boolean NOT NULL,
        decision       text NOT NULL,
        error_code     text,
        row_count      integer,
        duration_ms    double precision,
        prev_hash      text NOT NULL,
        hash           text NOT NULL
      )`);
    await q.query(`CREATE INDEX access_log_principal_idx ON access_log (principal, seq)`);
    await q.query(`CREATE INDEX access_log_at_idx ON access_log (at)`);
    await q.query(`
      CREATE FUNCTION access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'access_log is append-only: % is not allowed', TG_OP
          USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(`
      CREATE TRIGGER access_log_no_change BEFORE UPDATE OR DELETE ON access_log
      FOR EACH ROW EXECUTE FUNCTION access_log_append_only()`);
    await q.query(`
      CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
      FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE access_log`);
    await q.query(`DROP FUNCTION access_log_append_only()`);
    await q.query(`DROP TABLE field_policies`);
    await q.query(`DROP TABLE access_requests`);
    await q.query(`DROP TABLE grants`);
  }
}
