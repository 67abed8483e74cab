import { InstrumentEntity } from "./instrument.entity";
import { QuoteEntity } from "./quote.entity";

export { InstrumentEntity, QuoteEntity };

/** Every entity, for the DataSource. */
export const entities = [InstrumentEntity, QuoteEntity];
