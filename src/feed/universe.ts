import { Prng } from "./prng";
import type { Asset, ListingExchange } from "./protocol";

/** An instrument of the mock universe: its reference data plus where its price starts. */
export interface Instrument extends Asset {
  /** Price at the simulated start time. */
  initialPrice: number;
}

/** The SIP tape of each listing exchange (the trade's `z`). */
export const TAPE_OF: Readonly<Record<ListingExchange, string>> = { NYSE: "A", ARCA: "B", NASDAQ: "C" };

// Well-known tickers first, so demos and screenshots look familiar; prices are only a plausible start.
const KNOWN: ReadonlyArray<[string, string, ListingExchange, string, number]> = [
  ["AAPL", "Apple Inc.", "NASDAQ", "Information Technology", 228],
  ["MSFT", "Microsoft Corporation", "NASDAQ", "Information Technology", 415],
  ["NVDA", "NVIDIA Corporation", "NASDAQ", "Information Technology", 135],
  ["AMZN", "Amazon.com, Inc.", "NASDAQ", "Consumer Discretionary", 185],
  ["GOOGL", "Alphabet Inc. Class A", "NASDAQ", "Communication Services", 165],
  ["META", "Meta Platforms, Inc.", "NASDAQ", "Communication Services", 560],
  ["TSLA", "Tesla, Inc.", "NASDAQ", "Consumer Discretionary", 250],
  ["BRK.B", "Berkshire Hathaway Inc. Class B", "NYSE", "Financials", 455],
  ["JPM", "JPMorgan Chase & Co.", "NYSE", "Financials", 210],
  ["V", "Visa Inc.", "NYSE", "Financials", 280],
  ["UNH", "UnitedHealth Group Incorporated", "NYSE", "Health Care", 590],
  ["XOM", "Exxon Mobil Corporation", "NYSE", "Energy", 118],
  ["JNJ", "Johnson & Johnson", "NYSE", "Health Care", 160],
  ["WMT", "Walmart Inc.", "NYSE", "Consumer Staples", 80],
  ["MA", "Mastercard Incorporated", "NYSE", "Financials", 490],
  ["PG", "The Procter & Gamble Company", "NYSE", "Consumer Staples", 170],
  ["HD", "The Home Depot, Inc.", "NYSE", "Consumer Discretionary", 390],
  ["AVGO", "Broadcom Inc.", "NASDAQ", "Information Technology", 165],
  ["COST", "Costco Wholesale Corporation", "NASDAQ", "Consumer Staples", 880],
  ["KO", "The Coca-Cola Company", "NYSE", "Consumer Staples", 68],
  ["PEP", "PepsiCo, Inc.", "NASDAQ", "Consumer Staples", 170],
  ["NFLX", "Netflix, Inc.", "NASDAQ", "Communication Services", 700],
  ["ADBE", "Adobe Inc.", "NASDAQ", "Information Technology", 510],
  ["CRM", "Salesforce, Inc.", "NYSE", "Information Technology", 280],
  ["AMD", "Advanced Micro Devices, Inc.", "NASDAQ", "Information Technology", 150],
  ["INTC", "Intel Corporation", "NASDAQ", "Information Technology", 22],
  ["CSCO", "Cisco Systems, Inc.", "NASDAQ", "Information Technology", 52],
  ["ORCL", "Oracle Corporation", "NYSE", "Information Technology", 170],
  ["BAC", "Bank of America Corporation", "NYSE", "Financials", 40],
  ["WFC", "Wells Fargo & Company", "NYSE", "Financials", 60],
  ["CVX", "Chevron Corporation", "NYSE", "Energy", 150],
  ["PFE", "Pfizer Inc.", "NYSE", "Health Care", 29],
  ["MRK", "Merck & Co., Inc.", "NYSE", "Health Care", 100],
  ["ABBV", "AbbVie Inc.", "NYSE", "Health Care", 190],
  ["T", "AT&T Inc.", "NYSE", "Communication Services", 22],
  ["VZ", "Verizon Communications Inc.", "NYSE", "Communication Services", 42],
  ["DIS", "The Walt Disney Company", "NYSE", "Communication Services", 95],
  ["NKE", "NIKE, Inc.", "NYSE", "Consumer Discretionary", 80],
  ["MCD", "McDonald's Corporation", "NYSE", "Consumer Discretionary", 295],
  ["IBM", "International Business Machines Corporation", "NYSE", "Information Technology", 220],
  ["QCOM", "QUALCOMM Incorporated", "NASDAQ", "Information Technology", 165],
  ["TXN", "Texas Instruments Incorporated", "NASDAQ", "Information Technology", 200],
  ["BA", "The Boeing Company", "NYSE", "Industrials", 155],
  ["CAT", "Caterpillar Inc.", "NYSE", "Industrials", 380],
  ["GE", "GE Aerospace", "NYSE", "Industrials", 185],
  ["NEE", "NextEra Energy, Inc.", "NYSE", "Utilities", 78],
  ["LIN", "Linde plc", "NASDAQ", "Materials", 460],
  ["PLD", "Prologis, Inc.", "NYSE", "Real Estate", 120],
];

const SECTORS = [
  "Information Technology",
  "Health Care",
  "Financials",
  "Consumer Discretionary",
  "Consumer Staples",
  "Energy",
  "Industrials",
  "Materials",
  "Utilities",
  "Real Estate",
  "Communication Services",
];

const SECTOR_WORDS: Record<string, string[]> = {
  "Information Technology": ["Systems", "Software", "Semiconductor", "Networks", "Data", "Micro"],
  "Health Care": ["Therapeutics", "Biosciences", "Medical", "Health", "Pharmaceuticals", "Genomics"],
  Financials: ["Financial", "Bancorp", "Capital", "Insurance", "Trust", "Credit"],
  "Consumer Discretionary": ["Brands", "Retail", "Motors", "Leisure", "Apparel", "Restaurants"],
  "Consumer Staples": ["Foods", "Beverages", "Household", "Grocers", "Farms"],
  Energy: ["Energy", "Petroleum", "Resources", "Oil & Gas", "Midstream"],
  Industrials: ["Industries", "Aerospace", "Logistics", "Machinery", "Engineering", "Rail"],
  Materials: ["Materials", "Chemicals", "Metals", "Mining", "Packaging"],
  Utilities: ["Utilities", "Power", "Water", "Electric", "Gas"],
  "Real Estate": ["Realty", "Properties", "REIT", "Land", "Residential"],
  "Communication Services": ["Media", "Communications", "Telecom", "Interactive", "Entertainment"],
};

const HEADS = [
  "Al",
  "Bel",
  "Cor",
  "Dyn",
  "Ev",
  "Fal",
  "Gen",
  "Hal",
  "Ion",
  "Jun",
  "Kel",
  "Lum",
  "Mer",
  "Nov",
];
const HEADS2 = [
  "Or",
  "Pax",
  "Quan",
  "Ros",
  "Syn",
  "Tal",
  "Ul",
  "Ver",
  "Wex",
  "Xen",
  "Yar",
  "Zen",
  "Arc",
  "Bri",
];
const TAILS = ["tex", "dyne", "gen", "ora", "ix", "on", "ara", "ium", "co", "ex", "is", "ant", "eon", "ia"];
const FORMS = ["Inc.", "Corp.", "Holdings, Inc.", "Group", "Co.", "Ltd.", "plc", "Corporation"];

function syllableName(rng: Prng): string {
  const head = rng.chance(0.5) ? rng.pick(HEADS) : rng.pick(HEADS2);
  return head + (rng.chance(0.3) ? rng.pick(TAILS) : "") + rng.pick(TAILS);
}

// Tickers are built from the name's letters (first letter kept) like real ones; Nasdaq listings have
// four letters, NYSE ones one to three.
function tickerFor(name: string, len: number, rng: Prng): string {
  const letters = name.toUpperCase().replace(/[^A-Z]/g, "");
  let out = letters[0];
  let pos = 1;
  while (out.length < len && pos < letters.length) {
    const remainingNeeded = len - out.length;
    const remainingLetters = letters.length - pos;
    if (remainingLetters <= remainingNeeded || rng.chance(0.55)) out += letters[pos];
    pos++;
  }
  while (out.length < len) out += String.fromCharCode(65 + rng.int(0, 25));
  return out;
}

/**
 * The instrument universe for `seed`: the well-known tickers first, then generated ones with unique
 * symbols, names, listing exchanges and sectors. Same seed and count, same universe; a larger count
 * extends a smaller one's list.
 */
export function generateUniverse(seed: number, count: number): Instrument[] {
  const out: Instrument[] = [];
  const taken = new Set<string>();
  for (const [symbol, name, exchange, sector, initialPrice] of KNOWN) {
    if (out.length >= count) return out;
    out.push({ symbol, name, exchange, sector, initialPrice });
    taken.add(symbol);
  }
  const rng = new Prng(seed ^ 0x5eed1e55);
  const names = new Set<string>();
  while (out.length < count) {
    const sector = rng.pick(SECTORS);
    const roll = rng.next();
    const exchange: ListingExchange = roll < 0.55 ? "NASDAQ" : roll < 0.9 ? "NYSE" : "ARCA";
    const base = syllableName(rng);
    let name = `${base} ${rng.pick(SECTOR_WORDS[sector])} ${rng.pick(FORMS)}`;
    for (let n = 2; names.has(name); n++) name = `${base} ${n} ${rng.pick(FORMS)}`;
    let symbol = "";
    for (let attempt = 0; attempt < 50 && (symbol === "" || taken.has(symbol)); attempt++) {
      // Long attempts widen the search once short name-derived tickers run out (tens of thousands).
      const len = exchange === "NASDAQ" ? 4 : rng.int(attempt < 10 ? 2 : 3, attempt < 10 ? 3 : 4);
      symbol = tickerFor(attempt < 20 ? base : base + syllableName(rng), len + (attempt >= 40 ? 1 : 0), rng);
    }
    if (taken.has(symbol)) continue; // astronomically rare; the next round draws a fresh name
    names.add(name);
    taken.add(symbol);
    // Log-uniform between $5 and $500: most listings are cheap, a few are expensive.
    const initialPrice = Math.round(Math.exp(rng.uniform(Math.log(5), Math.log(500))) * 100) / 100;
    out.push({ symbol, name, exchange, sector, initialPrice });
  }
  return out;
}
