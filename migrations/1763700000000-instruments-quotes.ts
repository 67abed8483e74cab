import { MigrationInterface, QueryRunner } from "typeorm";

export class InstrumentsQuotes1763700000000 implements MigrationInterface {
  name = "InstrumentsQuotes1763700000000";

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE instruments (
        symbol   text PRIMARY KEY,
        name     text NOT NULL,
        exchange text NOT NULL,
        sector   text
      )`);
    // No foreign key to instruments: the validator checks symbols before a batch is written, and a
    // per-row FK check would cost ingest throughput for nothing.
    await q.query(`
      CREATE TABLE quotes (
        id          bigserial PRIMARY KEY,
        symbol      text NOT NULL,
        event_time  timestamptz NOT NULL,
        seq         bigint NOT NULL,
        price       double precision NOT NULL CHECK (price > 0),
        size        integer NOT NULL CHECK (size >= 0),
        bid         double precision,
        bid_size    integer,
        ask         double precision,
        ask_size    integer,
        exchange    text,
        source      text NOT NULL DEFAULT 'feed',
        received_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT quotes_symbol_seq_key UNIQUE (symbol, seq)
      )`);
    // Keyset pages per symbol and across symbols, in either direction (index scans run backwards).
    await q.query(`CREATE INDEX quotes_symbol_time_idx ON quotes (symbol, event_time, id)`);
    await q.query(`CREATE INDEX quotes_time_idx ON quotes (event_time, id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE quotes`);
    await q.query(`DROP TABLE instruments`);
  }
}
