/**
 * The registry of secret phrase generators: keyed functions a contributor uses to turn a round's
 * seed phrase and its own fresh randomness into its secret phrase. Each contributor draws a key of
 * its own that never leaves it, so no two contributors compute the same function.
 *
 *   hmac-sha512        HMAC (RFC 2104) with SHA-512 (FIPS 180-4), 64-byte key
 *   blake2b-512-keyed  BLAKE2b keyed mode (RFC 7693 §2.5), 64-byte key, 64-byte output
 *   kmac256            KMAC256 (NIST SP 800-185 §4), 64-byte key, S = "dkeygen secret phrase"
 *   blake3-keyed       BLAKE3 keyed_hash mode, 32-byte key, 64-byte extended output
 *
 * Every generator outputs 64 bytes. The input is the canonical encoding defined in
 * docs/PROTOCOL.md ("Secret phrase"), built by `secretPhraseInput`.
 */
import { createHmac } from "node:crypto";
import { blake2b } from "@noble/hashes/blake2.js";
import { blake3 } from "@noble/hashes/blake3.js";
import { kmac256 } from "@noble/hashes/sha3-addons.js";
import { lengthPrefixed } from "./canonical.js";

export const SECRET_PHRASE_BYTES = 64;

export interface PhraseGenerator {
  readonly name: string;
  readonly keyBytes: number;
  readonly standard: string;
  compute(key: Uint8Array, input: Uint8Array): Uint8Array;
}

const KMAC_CUSTOMIZATION = new TextEncoder().encode("dkeygen secret phrase");

const GENERATORS: readonly PhraseGenerator[] = [
  {
    name: "hmac-sha512",
    keyBytes: 64,
    standard: "RFC 2104 HMAC with SHA-512",
    compute: (key, input) => new Uint8Array(createHmac("sha512", key).update(input).digest()),
  },
  {
    name: "blake2b-512-keyed",
    keyBytes: 64,
    standard: "RFC 7693 BLAKE2b, keyed",
    compute: (key, input) => blake2b(input, { key, dkLen: SECRET_PHRASE_BYTES }),
  },
  {
    name: "kmac256",
    keyBytes: 64,
    standard: "NIST SP 800-185 KMAC256",
    compute: (key, input) =>
      kmac256(key, input, { dkLen: SECRET_PHRASE_BYTES, personalization: KMAC_CUSTOMIZATION }),
  },
  {
    name: "blake3-keyed",
    keyBytes: 32,
    standard: "BLAKE3 keyed_hash",
    compute: (key, input) => blake3(input, { key, dkLen: SECRET_PHRASE_BYTES }),
  },
];

export const PHRASE_GENERATOR_NAMES: readonly string[] = GENERATORS.map((g) => g.name);

export function phraseGenerator(name: string): PhraseGenerator {
  const found = GENERATORS.find((g) => g.name === name);
  if (!found) {
    throw new TypeError(
      `Unknown secret phrase generator "${name}"; choose one of ${PHRASE_GENERATOR_NAMES.join(", ")}.`,
    );
  }
  return found;
}

/**
 * The generator's input for one round:
 * LP("dkeygen/v1/secret-phrase", roundId, seedPhrase, entropy).
 */
export function secretPhraseInput(roundId: string, seedPhrase: Uint8Array, entropy: Uint8Array) {
  return lengthPrefixed("dkeygen/v1/secret-phrase", roundId, seedPhrase, entropy);
}
