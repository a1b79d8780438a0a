/**
 * The deterministic generator behind every derivation: HMAC_DRBG (NIST SP 800-90A Rev. 1
 * §10.1.2) with HMAC-SHA-512 (FIPS 198-1, FIPS 180-4), without prediction resistance and without
 * reseeding, plus the sampling rules the derivations need on top of it.
 *
 * For a purpose with label L (e.g. "dkeygen/v1/derive/otp") and parameters P:
 *
 *   Instantiate(entropy_input = round secret, nonce = empty,
 *               personalization_string = LP(L, canonicalJson(P)))
 *
 * LP is the length-prefixed encoding of src/crypto/canonical.ts and canonicalJson the RFC 8785
 * form of src/crypto/canonical-json.ts, so every purpose, version and parameter set draws from an
 * unrelated stream. P is the purpose's full parameter set, except where a module says otherwise
 * because some options only change how one key is shown: `wallet` personalizes with {words} only
 * (accounts, indexes and the passphrase are views of one mnemonic), and `multisig` runs one
 * generator per key with {key: i, m, n}.
 *
 * The nonce is empty. SP 800-90A §8.6.7 allows that when the entropy input carries at least
 * 3/2 · security_strength bits (384 bits here, for 256-bit strength) to stand in for entropy plus
 * nonce. The round secrets the server makes (HKDF-SHA-512 output, src/crypto/kdf.ts) are 512 bits,
 * which meets that rule; that margin is why the server always uses 512 bits. The offline
 * `dkeygen derive` (and this library) also accept a caller's secret of 256 bits or more. A 256-bit
 * secret with full entropy still gives a generator of 256-bit security strength, but it is below
 * the 3/2 rule, so such a derivation does not meet §8.6.7 as written. Secrets shorter than 256
 * bits are refused.
 *
 * Requests are capped at 2^19 bits (65536 bytes), SP 800-90A Table 2's max_number_of_bits_per_request;
 * `bytes(n)` splits larger requests. No derivation comes near the reseed interval (2^48 requests).
 *
 * Uniform values in a range are drawn by rejection sampling over the smallest bit mask that covers
 * the range (as FIPS 186-5 Appendix A.2.2 and A.4.2 do), never by reducing modulo the range, so
 * there is no modulo bias: each draw is accepted with probability above 1/2.
 */
import { createHmac } from "node:crypto";
import { lengthPrefixed } from "../crypto/canonical.js";
import { canonicalJson } from "../crypto/canonical-json.js";
import type { JsonObject } from "../json.js";

/** SP 800-90A Table 2: max_number_of_bits_per_request = 2^19 bits. */
export const MAX_BYTES_PER_REQUEST = 65536;
/** SP 800-90A Table 2: reseed_interval = 2^48 requests. */
const RESEED_INTERVAL = 2 ** 48;
/** HMAC-SHA-512's output length (outlen) in bytes. */
const OUTLEN = 64;
/** The security strength HMAC_DRBG with SHA-512 supports; the entropy input must carry as much. */
export const MIN_ENTROPY_BYTES = 32;

function hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const mac = createHmac("sha512", key);
  for (const part of parts) mac.update(part);
  return new Uint8Array(mac.digest());
}

const ZERO = Uint8Array.of(0x00);
const ONE = Uint8Array.of(0x01);

/**
 * HMAC_DRBG exactly as SP 800-90A Rev. 1 §10.1.2 specifies it, with SHA-512. This class is the
 * mechanism only; derivations use `DeterministicGenerator`, which adds the domain separation and
 * the sampling helpers.
 */
export class HmacDrbg {
  #key: Uint8Array;
  #v: Uint8Array;
  #reseedCounter: number;

  /** §10.1.2.3 HMAC_DRBG_Instantiate_algorithm. */
  constructor(entropyInput: Uint8Array, nonce: Uint8Array, personalization: Uint8Array) {
    if (!(entropyInput instanceof Uint8Array) || entropyInput.length < MIN_ENTROPY_BYTES) {
      throw new TypeError(
        `HmacDrbg: the entropy input must be at least ${MIN_ENTROPY_BYTES} bytes (256 bits)`,
      );
    }
    this.#key = new Uint8Array(OUTLEN); // Key = 0x00 00...00
    this.#v = new Uint8Array(OUTLEN).fill(0x01); // V = 0x01 01...01
    this.#update(concat(entropyInput, nonce, personalization));
    this.#reseedCounter = 1;
  }

  /** §10.1.2.2 HMAC_DRBG_Update_Process. `providedData` null means "no data", not "empty". */
  #update(providedData: Uint8Array | null): void {
    const data = providedData ?? new Uint8Array(0);
    this.#key = hmac(this.#key, this.#v, ZERO, data);
    this.#v = hmac(this.#key, this.#v);
    if (providedData === null || providedData.length === 0) return;
    this.#key = hmac(this.#key, this.#v, ONE, data);
    this.#v = hmac(this.#key, this.#v);
  }

  /** §10.1.2.5 HMAC_DRBG_Generate_algorithm, for at most 65536 bytes. */
  generate(length: number, additionalInput?: Uint8Array): Uint8Array {
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_BYTES_PER_REQUEST) {
      throw new RangeError(
        `HmacDrbg.generate: a request is 0 to ${MAX_BYTES_PER_REQUEST} bytes, got ${length}`,
      );
    }
    // Step 1: without reseeding, a generator that reached the interval must stop.
    if (this.#reseedCounter > RESEED_INTERVAL) {
      throw new Error("HmacDrbg: the reseed interval is exhausted");
    }
    const extra = additionalInput !== undefined && additionalInput.length > 0;
    // Step 2: fold in additional input, if any.
    if (extra) this.#update(additionalInput);
    // Steps 3-5: V = HMAC(Key, V), concatenated until there are enough bits.
    const out = new Uint8Array(length);
    for (let offset = 0; offset < length; offset += OUTLEN) {
      this.#v = hmac(this.#key, this.#v);
      out.set(this.#v.subarray(0, Math.min(OUTLEN, length - offset)), offset);
    }
    // Step 6: (Key, V) = HMAC_DRBG_Update(additional_input, Key, V).
    this.#update(extra ? additionalInput : null);
    this.#reseedCounter += 1;
    return out;
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Number of bits needed to write `value` (≥ 0) in binary; 0 for 0. */
export function bitLength(value: bigint): number {
  return value === 0n ? 0 : value.toString(2).length;
}

/** Big-endian unsigned integer from bytes. */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString("hex")}`);
}

/** The personalization string of a derivation: LP(label, canonicalJson(params)). */
export function personalizationFor(label: string, params: JsonObject): Uint8Array {
  return lengthPrefixed(label, canonicalJson(params));
}

/**
 * A derivation's source of deterministic randomness: HMAC_DRBG instantiated from the round secret
 * with the purpose's label and canonical parameters as personalization.
 */
export class DeterministicGenerator {
  readonly #drbg: HmacDrbg;

  constructor(secret: Uint8Array, label: string, params: JsonObject) {
    this.#drbg = new HmacDrbg(secret, new Uint8Array(0), personalizationFor(label, params));
  }

  /** `length` bytes, in requests of at most 65536 bytes each. */
  bytes(length: number): Uint8Array {
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`bytes: length must be a whole number ≥ 0, got ${length}`);
    }
    if (length <= MAX_BYTES_PER_REQUEST) return this.#drbg.generate(length);
    const out = new Uint8Array(length);
    for (let offset = 0; offset < length; offset += MAX_BYTES_PER_REQUEST) {
      const n = Math.min(MAX_BYTES_PER_REQUEST, length - offset);
      out.set(this.#drbg.generate(n), offset);
    }
    return out;
  }

  /**
   * An integer uniform in [0, maxExclusive): draws bitLength(maxExclusive − 1) bits (one request
   * of ⌈bits/8⌉ bytes, the excess high bits masked off) until the value is below the bound.
   */
  uniformBigInt(maxExclusive: bigint): bigint {
    if (typeof maxExclusive !== "bigint" || maxExclusive < 1n) {
      throw new RangeError("uniformBigInt: maxExclusive must be a bigint ≥ 1");
    }
    const bits = bitLength(maxExclusive - 1n);
    if (bits === 0) return 0n; // the range holds one value; nothing to draw
    const length = Math.ceil(bits / 8);
    const topMask = 0xff >>> (length * 8 - bits);
    for (;;) {
      const draw = this.bytes(length);
      draw[0]! &= topMask;
      const candidate = bytesToBigInt(draw);
      if (candidate < maxExclusive) return candidate;
    }
  }

  /** A safe integer uniform in [0, maxExclusive), by the same rejection rule. */
  uniformInt(maxExclusive: number): number {
    if (!Number.isSafeInteger(maxExclusive) || maxExclusive < 1) {
      throw new RangeError("uniformInt: maxExclusive must be a safe integer ≥ 1");
    }
    return Number(this.uniformBigInt(BigInt(maxExclusive)));
  }

  /**
   * A scalar uniform in [1, n − 1] for a group of order n: FIPS 186-5 Appendix A.2.2 (key pair
   * generation by rejection sampling), c uniform in [0, n − 2] and d = c + 1.
   */
  scalar(n: bigint): bigint {
    if (typeof n !== "bigint" || n < 2n) throw new RangeError("scalar: n must be a bigint ≥ 2");
    return this.uniformBigInt(n - 1n) + 1n;
  }
}

/** Checks a round secret at a public boundary: bytes, at least 256 bits. */
export function assertRoundSecret(secret: unknown): asserts secret is Uint8Array {
  if (!(secret instanceof Uint8Array)) {
    throw new TypeError("The round secret must be a Uint8Array.");
  }
  if (secret.length < MIN_ENTROPY_BYTES) {
    throw new TypeError(
      `The round secret must be at least ${MIN_ENTROPY_BYTES} bytes (256 bits); got ${secret.length}.`,
    );
  }
}
