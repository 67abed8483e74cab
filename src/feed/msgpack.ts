import { addExtension, Packr, Unpackr, type Options } from "msgpackr";
import { Timestamp } from "./timestamp";

/**
 * msgpack as Alpaca's stream speaks it: standard maps (no msgpackr records), event times in the msgpack
 * timestamp extension (type -1) with nanoseconds. Both the mock feed and the ingest use this module.
 */

// The extension type byte, as msgpackr reads it (unsigned): -1.
const TIMESTAMP_TYPE = 0xff;
const TWO_32 = 2 ** 32;

// msgpackr's extensions are global to the module: registering type -1 here makes every msgpackr unpack in
// this process return a Timestamp (nanoseconds kept) instead of a millisecond Date. Nothing else here
// decodes msgpack.
// Scratch space for the extension's bytes: msgpackr copies them into its output at once.
const scratch = { 4: Buffer.alloc(4), 8: Buffer.alloc(8), 12: Buffer.alloc(12) };

addExtension({
  Class: Timestamp,
  type: TIMESTAMP_TYPE,
  pack(t: Timestamp): Buffer {
    const sec = t.seconds;
    const nsec = t.nanosOfSecond;
    if (nsec === 0 && sec >= 0 && sec < TWO_32) {
      scratch[4].writeUInt32BE(sec);
      return scratch[4];
    }
    if (sec >= 0 && sec < 2 ** 34) {
      // timestamp 64: nanoseconds in the upper 30 bits, seconds in the lower 34.
      scratch[8].writeUInt32BE(nsec * 4 + Math.floor(sec / TWO_32));
      scratch[8].writeUInt32BE(sec % TWO_32, 4);
      return scratch[8];
    }
    scratch[12].writeUInt32BE(nsec);
    scratch[12].writeBigInt64BE(BigInt(sec), 4);
    return scratch[12];
  },
  unpack(d: Uint8Array): Timestamp {
    const u32 = (k: number) => d[k] * 0x1000000 + ((d[k + 1] << 16) | (d[k + 2] << 8) | d[k + 3]);
    if (d.length === 4) return Timestamp.fromSeconds(u32(0), 0);
    if (d.length === 8) {
      const hi = u32(0);
      return Timestamp.fromSeconds((hi % 4) * TWO_32 + u32(4), Math.floor(hi / 4));
    }
    if (d.length === 12) {
      const b = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
      return Timestamp.fromSeconds(Number(b.readBigInt64BE(4)), u32(0));
    }
    throw new RangeError(`a msgpack timestamp is 4, 8 or 12 bytes, not ${d.length}`);
  },
});

// fixmap for small maps, as Go's encoders (Alpaca's server) write them.
const packr = new Packr({ useRecords: false, variableMapSize: true });
// Ids beyond 2^53 stay exact as bigint (and are then refused as malformed), never rounded.
const unpackr = new Unpackr({ useRecords: false, int64AsType: "auto" } as unknown as Options);

/** One value as msgpack. */
export function pack(value: unknown): Buffer {
  return packr.pack(value);
}

/** One msgpack value; throws on bytes that are not exactly one. */
export function unpack(data: Uint8Array): unknown {
  return unpackr.unpack(data);
}

/**
 * A msgpack array made of elements already packed: each message of a batch is packed once and the same
 * bytes go into the frame of every subscription that wants it. The array header is written here since
 * msgpackr has no way to splice in packed elements.
 */
export function packedArray(elements: readonly Buffer[]): Buffer {
  const n = elements.length;
  let header: Buffer;
  if (n < 16) header = Buffer.from([0x90 | n]);
  else if (n < 0x10000) {
    header = Buffer.allocUnsafe(3);
    header[0] = 0xdc;
    header.writeUInt16BE(n, 1);
  } else {
    header = Buffer.allocUnsafe(5);
    header[0] = 0xdd;
    header.writeUInt32BE(n, 1);
  }
  return Buffer.concat([header, ...elements]);
}
