import { MigrationInterface, QueryRunner } from "typeorm";

export class Windows1763760000000 implements MigrationInterface {
  name = "Windows1763760000000";

  async up(q: QueryRunner): Promise<void> {
    // 10-second partial aggregates, merged on conflict as trades arrive. open/close keep the
    // (event_time, seq) of the trade they came from, so merges keep "first/last by (time, seq)" exact.
    await q.query(`
      CREATE TABLE panes_10s (
        symbol    text NOT NULL,
        bucket    timestamptz NOT NULL,
        n         integer NOT NULL,
        px_sum    double precision NOT NULL,
        pv_sum    double precision NOT NULL,
        volume    double precision NOT NULL,
        high      double precision NOT NULL,
        low       double precision NOT NULL,
        open_px   double precision NOT NULL,
        open_ts   timestamptz NOT NULL,
        open_seq  bigint NOT NULL,
        close_px  double precision NOT NULL,
        close_ts  timestamptz NOT NULL,
        close_seq bigint NOT NULL,
        PRIMARY KEY (symbol, bucket)
      )`);
    await q.query(`CREATE INDEX panes_10s_bucket_idx ON panes_10s (bucket)`);
    await q.query(`CREATE TYPE window_size AS ENUM ('ONE_MINUTE', 'FIVE_MINUTES', 'FIFTEEN_MINUTES')`);
    await q.query(`
      CREATE TABLE window_aggregates (
        size         window_size NOT NULL,
        window_end   timestamptz NOT NULL,
        symbol       text NOT NULL,
        window_start timestamptz NOT NULL,
        open         double precision NOT NULL,
        high         double precision NOT NULL,
        low          double precision NOT NULL,
        close        double precision NOT NULL,
        mean         double precision NOT NULL,
        vwap         double precision,
        volume       double precision NOT NULL,
        tick_count   integer NOT NULL,
        revision     integer NOT NULL DEFAULT 0,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (size, window_end, symbol)
      )`);
    // Per-symbol history pages; rankings read one (size, window_end) slice through the primary key.
    await q.query(
      `CREATE INDEX window_aggregates_symbol_idx ON window_aggregates (size, symbol, window_end)`,
    );
    // How far the engine has come. A window is final when its end is at or before final_until: derived
    // on read, so that finalizing never rewrites rows.
    await q.query(`
      CREATE TABLE window_progress (
        id            smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
        emitted_until timestamptz,
        final_until   timestamptz
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE window_progress`);
    await q.query(`DROP TABLE window_aggregates`);
    await q.query(`DROP TYPE window_size`);
    await q.query(`DROP TABLE panes_10s`);
  }
}
