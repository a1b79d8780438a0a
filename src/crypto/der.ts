/**
 * The few DER (ITU-T X.690 §10, definite-length BER) encodings dkeygen writes or reads itself:
 * SEQUENCE, OCTET STRING, small non-negative INTEGERs and OBJECT IDENTIFIERs. Only what
 * pkcs8-scrypt.ts needs, because node:crypto can write PKCS#8 only with PBKDF2; everything else
 * goes through node:crypto's own encoders.
 */

const TAG = { integer: 0x02, octetString: 0x04, oid: 0x06, sequence: 0x30 } as const;

function lengthBytes(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

function tlv(tag: number, value: Uint8Array): Uint8Array {
  return Buffer.concat([Uint8Array.of(tag), lengthBytes(value.length), value]);
}

export function derSequence(...items: Uint8Array[]): Uint8Array {
  return tlv(TAG.sequence, Buffer.concat(items));
}

export function derOctetString(value: Uint8Array): Uint8Array {
  return tlv(TAG.octetString, value);
}

/** A non-negative safe integer, minimal two's complement (a 0x00 byte before a high bit). */
export function derInteger(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`derInteger: ${value} is not a non-negative safe integer`);
  }
  const bytes: number[] = [];
  for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  if (bytes.length === 0 || bytes[0]! >= 0x80) bytes.unshift(0);
  return tlv(TAG.integer, Uint8Array.from(bytes));
}

/** An OBJECT IDENTIFIER from its dotted form (X.690 §8.19). */
export function derOid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map(Number);
  if (arcs.length < 2 || arcs.some((arc) => !Number.isSafeInteger(arc) || arc < 0)) {
    throw new RangeError(`derOid: ${dotted} is not an object identifier`);
  }
  const out: number[] = [];
  const base128 = (arc: number) => {
    const digits = [arc % 128];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) {
      digits.unshift(0x80 | (rest % 128));
    }
    out.push(...digits);
  };
  base128(40 * arcs[0]! + arcs[1]!);
  for (const arc of arcs.slice(2)) base128(arc);
  return tlv(TAG.oid, Uint8Array.from(out));
}

/** One decoded element: its tag and the bytes of its value. */
export interface DerElement {
  tag: number;
  value: Uint8Array;
}

/** Thrown for bytes that are not the DER this module reads. */
export class DerError extends Error {}

/** The elements one after another in `bytes` (the content of a SEQUENCE, or a whole file). */
export function derElements(bytes: Uint8Array): DerElement[] {
  const out: DerElement[] = [];
  let at = 0;
  while (at < bytes.length) {
    const tag = bytes[at++]!;
    if (at >= bytes.length) throw new DerError("truncated DER element");
    let length = bytes[at++]!;
    if (length >= 0x80) {
      const count = length & 0x7f;
      if (count === 0 || count > 4 || at + count > bytes.length) {
        throw new DerError("unsupported DER length");
      }
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + bytes[at++]!;
    }
    if (at + length > bytes.length) throw new DerError("truncated DER element");
    out.push({ tag, value: bytes.subarray(at, at + length) });
    at += length;
  }
  return out;
}

/** The children of a SEQUENCE element. */
export function derChildren(element: DerElement | undefined): DerElement[] {
  if (element?.tag !== TAG.sequence) throw new DerError("expected a DER SEQUENCE");
  return derElements(element.value);
}

/** An OBJECT IDENTIFIER element in dotted form. */
export function derReadOid(element: DerElement | undefined): string {
  if (element?.tag !== TAG.oid || element.value.length === 0) {
    throw new DerError("expected a DER OBJECT IDENTIFIER");
  }
  const arcs: number[] = [];
  let arc = 0;
  for (const byte of element.value) {
    arc = arc * 128 + (byte & 0x7f);
    if (!Number.isSafeInteger(arc)) throw new DerError("object identifier arc too large");
    if ((byte & 0x80) === 0) {
      if (arcs.length === 0)
        arcs.push(arc < 80 ? Math.floor(arc / 40) : 2, arc < 80 ? arc % 40 : arc - 80);
      else arcs.push(arc);
      arc = 0;
    }
  }
  return arcs.join(".");
}

/** A non-negative INTEGER element that fits a safe integer. */
export function derReadInteger(element: DerElement | undefined): number {
  if (element?.tag !== TAG.integer || element.value.length === 0 || element.value[0]! >= 0x80) {
    throw new DerError("expected a non-negative DER INTEGER");
  }
  let value = 0;
  for (const byte of element.value) value = value * 256 + byte;
  if (!Number.isSafeInteger(value)) throw new DerError("DER INTEGER too large");
  return value;
}

export function derReadOctetString(element: DerElement | undefined): Uint8Array {
  if (element?.tag !== TAG.octetString) throw new DerError("expected a DER OCTET STRING");
  return element.value;
}
