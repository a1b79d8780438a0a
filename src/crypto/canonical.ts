/**
 * Canonical, unambiguous byte encodings for everything that is signed, MACed, hashed into a KDF
 * or used as AEAD associated data. One rule everywhere (docs/PROTOCOL.md §"Canonical encoding"):
 *
 *   LP(x1, ..., xn) = len(x1) ‖ x1 ‖ ... ‖ len(xn) ‖ xn
 *
 * where len is the byte length as a 32-bit unsigned big-endian integer and strings are UTF-8.
 * Length prefixes make the concatenation injective: no two field lists encode to the same bytes.
 */

export type Field = Uint8Array | string;

const utf8 = new TextEncoder();

export function toBytes(field: Field): Uint8Array {
  return typeof field === "string" ? utf8.encode(field) : field;
}

/** LP(fields...) as defined above. */
export function lengthPrefixed(...fields: Field[]): Uint8Array {
  // Sizes first, then one allocation: this runs several times per request on the hot path.
  let total = 0;
  const sizes = fields.map((f) =>
    typeof f === "string" ? Buffer.byteLength(f, "utf8") : f.length,
  );
  for (const size of sizes) total += 4 + size;
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    const size = sizes[i]!;
    out.writeUInt32BE(size, offset);
    offset += 4;
    if (typeof field === "string") out.write(field, offset, "utf8");
    else out.set(field, offset);
    offset += size;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** A 32-bit unsigned big-endian integer as 4 bytes. */
export function u32(value: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`u32: ${value} is not a 32-bit unsigned integer`);
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, false);
  return out;
}
