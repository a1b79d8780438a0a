/**
 * Byte fields on the wire are canonical base64url of a bounded length (protocol/wire-types.ts
 * `Bytes`, `BytesUpTo`), so that a frame that passes its schema always decodes: each row below is
 * one field of one message, taken from its golden frame, and must accept exactly the canonical
 * encodings of its byte range and refuse, as a malformed message naming the field, one byte too
 * many or too few, an encoding whose unused bits are set, padding, the standard alphabet and a
 * length no encoder writes. What it accepts decodes with `fromBase64url` to as many bytes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { decodeMessage } from "../../src/protocol/messages.js";
import { MAX_SIGN_MESSAGE_BYTES } from "../../src/protocol/threshold-messages.js";
import { readGolden } from "../helpers/wire-golden.js";

interface Row {
  /** The golden frame the field is taken from (test/vectors/dkeygen-wire/frames.json). */
  frame: string;
  field: string;
  /** The byte lengths the field may have, inclusive. */
  min: number;
  max: number;
}

const ROWS: Row[] = [
  // A message to sign: empty allowed (as it always was over the admin channel), 16 KiB at most.
  { frame: "admin.threshold.sign", field: "message", min: 0, max: MAX_SIGN_MESSAGE_BYTES },
  { frame: "sign.request", field: "message", min: 0, max: MAX_SIGN_MESSAGE_BYTES },
  // Fields of exact and bounded length, for comparison.
  { frame: "join", field: "identity", min: 32, max: 32 },
  { frame: "sign.share (from 1)", field: "share", min: 32, max: 32 },
  { frame: "admin.export", field: "revealTo", min: 1, max: 2048 },
];

const golden = readGolden();
const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 37 + 11) & 0xff);

function withField(row: Row, value: string): string {
  const frame = JSON.parse(golden.frames[row.frame]!) as Record<string, unknown>;
  assert.ok(row.field in frame, `${row.frame} has ${row.field}`);
  return JSON.stringify({ ...frame, [row.field]: value });
}

function accepts(row: Row, value: string, length: number): void {
  const decoded = decodeMessage(withField(row, value)) as unknown as Record<string, string>;
  assert.equal(decoded[row.field], value);
  assert.equal(fromBase64url(value, row.field).length, length, `${row.frame}.${row.field}`);
}

function refuses(row: Row, value: string, why: string): void {
  assert.throws(
    () => decodeMessage(withField(row, value)),
    (error: unknown) => {
      assert.ok(error instanceof DkeygenError, why);
      assert.equal(error.code, ErrorCodes.MALFORMED_MESSAGE, why);
      assert.ok(error.message.includes(row.field), `${why}: names the field (${error.message})`);
      return true;
    },
    `${row.frame}.${row.field}: ${why} must be refused`,
  );
}

/** `text` with its last character's unused bits set: the same bytes, spelled another way. */
function withUnusedBits(text: string): string | undefined {
  const rest = text.length % 4;
  if (rest === 0) return undefined; // whole groups: no unused bits
  const last = text.at(-1)!;
  // A 1-byte tail has 4 unused bits, a 2-byte tail 2: adding 1 to the character sets the lowest.
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  return `${text.slice(0, -1)}${alphabet[alphabet.indexOf(last) + 1]}`;
}

for (const row of ROWS) {
  test(`${row.frame}: ${row.field} is canonical base64url of ${row.min} to ${row.max} bytes`, () => {
    // Both ends of the range, and lengths that end in a 1-byte and a 2-byte tail.
    const lengths = new Set(
      [row.min, row.max, row.min + 1, row.min + 2, row.max - 1].filter(
        (n) => n >= row.min && n <= row.max,
      ),
    );
    for (const n of lengths) accepts(row, toBase64url(bytes(n)), n);

    if (row.min > 0) refuses(row, toBase64url(bytes(row.min - 1)), "one byte too few");
    else accepts(row, "", 0);
    refuses(row, toBase64url(bytes(row.max + 1)), "one byte too many");
    for (const n of lengths) {
      const canonical = toBase64url(bytes(n));
      const other = withUnusedBits(canonical);
      if (other !== undefined) {
        assert.deepEqual(Buffer.from(other, "base64url"), Buffer.from(canonical, "base64url"));
        refuses(row, other, `${n} bytes with unused bits set`);
      }
      if (n % 3 !== 0) refuses(row, `${canonical}=`, `${n} bytes, padded`);
      if (n > 0) {
        refuses(row, `${canonical.slice(0, -4)}+/${canonical.slice(-2)}`, "standard base64");
        // Whole groups and one character more: 1 mod 4, which no encoding has.
        refuses(
          row,
          `${canonical.slice(0, canonical.length - (canonical.length % 4))}A`,
          "1 mod 4",
        );
      }
    }
    refuses(row, "!!!!", "not base64url");
  });
}
