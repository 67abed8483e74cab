import { InstrumentsQuotes1763700000000 } from "./1763700000000-instruments-quotes";

/** Every migration, oldest first. Hand-written; the schema is never synchronized from entities. */
export const migrations = [InstrumentsQuotes1763700000000];
