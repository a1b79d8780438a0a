/**
 * The one-off key an admin asks a secret part to be sealed to (`revealTo`): exactly one DER
 * SubjectPublicKeyInfo of an RSA key of at least 3072 bits with e = 65537, nothing else.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { toBase64url } from "../../src/crypto/base64url.js";
import { ErrorCodes, isDkeygenError } from "../../src/errors.js";
import { revealKey } from "../../src/server/admin-reveal.js";

const spki = (options: { modulusLength: number; publicExponent?: number }) =>
  generateKeyPairSync("rsa", options).publicKey.export({ type: "spki", format: "der" });
const refused = (pattern: RegExp) => (error: unknown) =>
  isDkeygenError(error, ErrorCodes.INVALID_INPUT) && pattern.test(error.message);

test("a revealTo key of RSA-3072 with e = 65537, exactly encoded, is taken", () => {
  const der = spki({ modulusLength: 3072 });
  assert.equal(revealKey(toBase64url(der)).asymmetricKeyDetails?.modulusLength, 3072);
});

test("a revealTo key with a byte after its DER is refused", () => {
  const der = spki({ modulusLength: 3072 });
  assert.throws(
    () => revealKey(toBase64url(Buffer.concat([der, Buffer.from([0])]))),
    refused(/nothing after it/),
  );
});

test("a revealTo key with public exponent 3 is refused", () => {
  const der = spki({ modulusLength: 3072, publicExponent: 3 });
  assert.throws(() => revealKey(toBase64url(der)), refused(/65537/));
});

test("a revealTo key under 3072 bits, of another type, or no key at all is refused", () => {
  assert.throws(() => revealKey(toBase64url(spki({ modulusLength: 2048 }))), refused(/3072/));
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
    type: "spki",
    format: "der",
  });
  assert.throws(() => revealKey(toBase64url(ec)), refused(/RSA/));
  assert.throws(() => revealKey(toBase64url(Buffer.from("not a key"))), refused(/DER/));
});
