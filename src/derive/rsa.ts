/**
 * Purpose `rsa`: an RSA key pair (RFC 8017) of 2048, 3072 or 4096 bits with e = 65537, generated as
 * FIPS 186-5 Appendix A.1.3 specifies ("Generation of Random Primes that are Probably Prime"), with
 * the derivation's HMAC_DRBG (src/derive/drbg.ts) as the random bit generator.
 *
 * With k = nlen/2, candidate strings of k bits are read one after another from the generator's
 * output (requested 64 candidates at a time, so a 1536-bit prime costs few DRBG requests):
 *
 *   A.1.3 step 4.2  c = the next k-bit string;       4.3  c is made odd (c + 1 if even)
 *         step 4.4  c < √2·2^(k−1)?  next string     (exact integer comparison)
 *         step 4.5  gcd(c − 1, e) = 1 and c passes Miller–Rabin?  then p = c, else next string
 *   step 5: q likewise from the strings after p, also requiring |p − q| > 2^(k−100) (step 5.5)
 *   then d = e⁻¹ mod lcm(p − 1, q − 1) (FIPS 186-5 §5.1, Appendix A.1.1); if d ≤ 2^(nlen/2), p and
 *   q are both drawn anew from the strings that follow.
 *
 * Every candidate is fresh, as A.1.3 requires (no incremental search from one random start). Each
 * candidate is first trial-divided by the odd primes below SIEVE_BOUND in plain JavaScript; that
 * filter only removes composites, so it changes the work, never the result. Survivors go to
 * node:crypto `checkPrime`, OpenSSL's BN_is_prime_ex on the libuv thread pool: Miller–Rabin with at
 * least 64 random bases for these sizes (OpenSSL raises smaller requests to 64), more than FIPS
 * 186-5 Table B.1's minimum for random candidates of 1024–2048 bits. Its bases are random, but that
 * only bounds the chance (< 2^-128) that a composite is accepted: the output is a function of the
 * round secret alone.
 *
 * Speed: most of the cost is Miller–Rabin on sieve survivors. Up to CONCURRENT_TESTS survivors are
 * tested at once on the thread pool while the main thread reads and sieves the next candidates;
 * results are consumed strictly in stream order, so the key is the same as a one-at-a-time search
 * would find. The iteration limit of A.1.3 step 4.7 (5·nlen/2 candidates) exists to detect a broken
 * RBG; here it would make about one secret in a million underivable, so the search goes on instead
 * (the output distribution is unchanged).
 *
 * Output: PKCS#8 and SPKI PEM (built through a JWK import into node:crypto, so OpenSSL reads them),
 * with n (hex) and e in the public part. p > q, as OpenSSL orders them.
 */
import { checkPrime, createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { invert } from "@noble/curves/abstract/modular.js";
import { fingerprintOf } from "../crypto/fingerprint.js";
import { assertRoundSecret, bitLength, bytesToBigInt, DeterministicGenerator } from "./drbg.js";
import { checkKnownOptions, intOption, type RawParams } from "./params.js";
import type { Derivation, DerivationResult } from "./types.js";

export const RSA_LABEL = "dkeygen/v1/derive/rsa";
export const RSA_SIZES = [2048, 3072, 4096] as const;
export type RsaBits = (typeof RSA_SIZES)[number];
export const RSA_PUBLIC_EXPONENT = 65537n;

export interface RsaParams {
  /** Modulus length nlen in bits (default 3072). */
  bits: RsaBits;
}

// ---- trial division ---------------------------------------------------------------------------

/**
 * Odd primes below this bound divide out candidates before Miller–Rabin. Trial division by a prime
 * r pays while it costs less than the Miller–Rabin it saves, a fraction 1/r of one test (~0.8 ms
 * at 1536 bits). Measured here, going from 2^13 to 2^14 costs ~7 µs more per candidate and saves
 * ~11 µs of Miller–Rabin; from 2^14 to 2^15 it costs ~11 µs and saves ~7 µs. About 11% of
 * candidates survive a bound of 2^14.
 */
export const SIEVE_BOUND = 1 << 14;

/** Small primes packed into products below 2^53, so a remainder modulo one is an exact double. */
interface Modulus {
  m: bigint;
  primes: number[];
}

/** Moduli packed into products of about 848 bits: one big remainder, then cheap small ones. */
interface Batch {
  product: bigint;
  moduli: Modulus[];
}

function oddPrimesBelow(bound: number): number[] {
  const composite = new Uint8Array(bound);
  const primes: number[] = [];
  for (let i = 3; i < bound; i += 2) {
    if (composite[i]) continue;
    primes.push(i);
    for (let j = i * i; j < bound; j += 2 * i) composite[j] = 1;
  }
  return primes;
}

/**
 * The trial-division table, smallest primes first so that most candidates are rejected by the
 * first remainder (a third are divisible by 3 alone). A candidate c is reduced modulo a batch
 * product (one multi-word division), that remainder modulo each of the batch's 53-bit moduli
 * (one-word divisions), and that modulo each small prime in double arithmetic.
 */
const BATCHES: readonly Batch[] = (() => {
  const moduli: Modulus[] = [];
  let primes: number[] = [];
  let product = 1;
  for (const prime of oddPrimesBelow(SIEVE_BOUND)) {
    if (product * prime >= 2 ** 53) {
      moduli.push({ m: BigInt(product), primes });
      primes = [];
      product = 1;
    }
    primes.push(prime);
    product *= prime;
  }
  if (primes.length > 0) moduli.push({ m: BigInt(product), primes });
  const batches: Batch[] = [];
  let current: Modulus[] = [];
  let batchProduct = 1n;
  for (const modulus of moduli) {
    if (current.length > 0 && bitLength(batchProduct * modulus.m) > 848) {
      batches.push({ product: batchProduct, moduli: current });
      current = [];
      batchProduct = 1n;
    }
    current.push(modulus);
    batchProduct *= modulus.m;
  }
  if (current.length > 0) batches.push({ product: batchProduct, moduli: current });
  return batches;
})();

/**
 * True when the candidate may be prime and usable: no odd prime below SIEVE_BOUND divides it, and
 * gcd(c − 1, e) = 1, which for the prime e = 65537 means c mod e ≠ 1 (A.1.3 step 4.5).
 */
export function passesSieve(candidate: bigint): boolean {
  for (const { product, moduli } of BATCHES) {
    const big = candidate % product;
    for (const { m, primes } of moduli) {
      const r = Number(big % m);
      for (const prime of primes) if (r % prime === 0) return false;
    }
  }
  return candidate % RSA_PUBLIC_EXPONENT !== 1n;
}

// ---- the prime search -------------------------------------------------------------------------

/** Survivors tested at once: the machine's two cores plus one to cover the main thread's sieving. */
const CONCURRENT_TESTS = 3;
/** How far ahead of the first unconsumed survivor the search may run. */
const MAX_LOOKAHEAD = 16;
/** Candidate strings per DRBG request. */
const CANDIDATES_PER_REQUEST = 64;

/** ⌈√2 · 2^(k−1)⌉: the smallest admissible prime of k bits (A.1.3 step 4.4). */
function sqrt2Bound(k: number): bigint {
  const square = 1n << BigInt(2 * k - 1); // (√2 · 2^(k−1))² = 2^(2k−1), never a perfect square
  let x = 1n << BigInt(k); // Newton's method from above converges to ⌊√square⌋
  for (;;) {
    const y = (x + square / x) >> 1n;
    if (y >= x) return x + 1n;
    x = y;
  }
}

/**
 * Reads k-bit candidate strings from the generator's output, in order (A.1.3 steps 4.2–4.4). The
 * output is requested in blocks of 64 candidates' worth (at most 16 KiB, under the 64 KiB limit).
 *
 * Step 4.4 rejects c < ⌈√2·2^(k−1)⌉, whose top byte is 0xb5 for every k here. A string whose first
 * byte is below 0xb5 fails step 4.4 whatever follows, so its other bytes are never read: the next
 * byte starts the next string. Accepted candidates are exactly as distributed as in A.1.3 (uniform
 * over the odd integers in [⌈√2·2^(k−1)⌉, 2^k)), and about 70% of the DRBG output is saved.
 */
class CandidateStream {
  readonly #generator: DeterministicGenerator;
  readonly #size: number;
  readonly #requestBytes: number;
  readonly #lowerBound: bigint;
  readonly #lowerTop: number;
  #buffer: Uint8Array = new Uint8Array(0);
  #offset = 0;

  constructor(generator: DeterministicGenerator, k: number) {
    this.#generator = generator;
    this.#size = k / 8;
    this.#requestBytes = this.#size * CANDIDATES_PER_REQUEST;
    this.#lowerBound = sqrt2Bound(k);
    this.#lowerTop = Number(this.#lowerBound >> BigInt(k - 8));
  }

  /** Fills out[from, to) with the next bytes of the stream. */
  #read(out: Uint8Array, from: number, to: number): void {
    let filled = from;
    while (filled < to) {
      if (this.#offset === this.#buffer.length) {
        this.#buffer = this.#generator.bytes(this.#requestBytes);
        this.#offset = 0;
      }
      const n = Math.min(to - filled, this.#buffer.length - this.#offset);
      out.set(this.#buffer.subarray(this.#offset, this.#offset + n), filled);
      this.#offset += n;
      filled += n;
    }
  }

  /** The next odd candidate ≥ √2·2^(k−1) of exactly k bits. */
  next(): bigint {
    const c = new Uint8Array(this.#size);
    for (;;) {
      this.#read(c, 0, 1);
      if (c[0]! < this.#lowerTop) continue;
      this.#read(c, 1, c.length);
      c[c.length - 1]! |= 1; // step 4.3: an even c becomes c + 1
      const value = bytesToBigInt(c);
      if (value < this.#lowerBound) continue; // step 4.4, for a first byte of exactly 0xb5
      return value;
    }
  }
}

interface Survivor {
  value: bigint;
  probablyPrime: Promise<boolean>;
}

function isProbablePrime(candidate: bigint): Promise<boolean> {
  return new Promise((resolve, reject) => {
    checkPrime(candidate, { checks: 64 }, (error, result) =>
      error ? reject(error) : resolve(result),
    );
  });
}

/** The primes p > q and private exponent of an RSA key, from `generator` (see module header). */
export interface RsaPrimes {
  p: bigint;
  q: bigint;
  d: bigint;
}

export async function generateRsaPrimes(
  generator: DeterministicGenerator,
  nlen: RsaBits,
): Promise<RsaPrimes> {
  const k = nlen / 2;
  const stream = new CandidateStream(generator, k);
  const e = RSA_PUBLIC_EXPONENT;
  const minDistance = 1n << BigInt(k - 100);
  const minD = 1n << BigInt(nlen / 2);

  // Survivors in stream order; a window of them is being tested on the thread pool.
  const queue: Survivor[] = [];
  let inFlight = 0;
  let stopped = false;
  const running = new Set<Promise<unknown>>();
  const launch = () => {
    let c = stream.next();
    while (!passesSieve(c)) c = stream.next();
    inFlight += 1;
    const probablyPrime = isProbablePrime(c);
    const settled: Promise<void> = probablyPrime.then(
      () => undefined,
      () => undefined,
    );
    running.add(settled);
    void settled.then(() => {
      running.delete(settled);
      inFlight -= 1;
      fill();
    });
    queue.push({ value: c, probablyPrime });
  };
  const fill = () => {
    while (!stopped && inFlight < CONCURRENT_TESTS && queue.length < MAX_LOOKAHEAD) launch();
  };

  try {
    let p: bigint | undefined;
    for (;;) {
      fill();
      // A test that finished may not have released its slot yet; never wait on an empty queue.
      if (queue.length === 0) launch();
      const head = queue.shift()!;
      if (!(await head.probablyPrime)) continue;
      if (p === undefined) {
        p = head.value; // step 4: the first probable prime
        continue;
      }
      const q = head.value;
      const distance = p > q ? p - q : q - p;
      if (distance <= minDistance) continue; // step 5.5
      const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
      const d = invert(e, lambda);
      if (d <= minD) {
        p = undefined; // d too small: both primes are drawn again
        continue;
      }
      return p > q ? { p, q, d } : { p: q, q: p, d };
    }
  } finally {
    // Nothing may keep running (or reject unobserved) after the search returns.
    stopped = true;
    await Promise.all(running);
  }
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

// ---- the key ---------------------------------------------------------------------------------

const b64u = (value: bigint) => {
  const hex = value.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, "hex").toString("base64url");
};

/** A node:crypto private key from p, q, e and d, with the CRT values of RFC 8017 §3.2. */
export function rsaPrivateKeyFromPrimes(p: bigint, q: bigint, e: bigint, d: bigint): KeyObject {
  const n = p * q;
  return createPrivateKey({
    key: {
      kty: "RSA",
      n: b64u(n),
      e: b64u(e),
      d: b64u(d),
      p: b64u(p),
      q: b64u(q),
      dp: b64u(d % (p - 1n)),
      dq: b64u(d % (q - 1n)),
      qi: b64u(invert(q, p)),
    },
    format: "jwk",
  });
}

/**
 * FIPS 186-5's conditions on a key pair (A.1.3 steps 4.4, 4.5, 5.5 and §5.1's bounds on d), for
 * tests and audits; returns the list of violated conditions (empty when the key conforms).
 */
export function fips186RsaViolations(
  nlen: number,
  p: bigint,
  q: bigint,
  e: bigint,
  d: bigint,
): string[] {
  const k = nlen / 2;
  const bound = sqrt2Bound(k);
  const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
  const out: string[] = [];
  if (bitLength(p * q) !== nlen) out.push("n does not have nlen bits");
  if (p < bound || q < bound) out.push("a prime is below √2·2^(nlen/2 − 1)");
  if (bitLength(p) !== k || bitLength(q) !== k) out.push("a prime does not have nlen/2 bits");
  if (gcd(p - 1n, e) !== 1n || gcd(q - 1n, e) !== 1n) out.push("gcd(prime − 1, e) ≠ 1");
  if ((p > q ? p - q : q - p) <= 1n << BigInt(k - 100)) out.push("|p − q| ≤ 2^(nlen/2 − 100)");
  if (d <= 1n << BigInt(k)) out.push("d ≤ 2^(nlen/2)");
  if (d >= lambda) out.push("d ≥ lcm(p − 1, q − 1)");
  if ((e * d) % lambda !== 1n) out.push("e·d ≢ 1 mod lcm(p − 1, q − 1)");
  if (e <= 1n << 16n || e >= 1n << 256n || e % 2n === 0n) out.push("e is not odd in (2^16, 2^256)");
  return out;
}

export const rsa: Derivation<RsaParams> = {
  purpose: "rsa",
  label: RSA_LABEL,
  summary:
    "an RSA key pair (bits=2048|3072|4096, default 3072; e = 65537), FIPS 186-5 A.1.3 probable primes",
  parseParams(raw: RawParams): RsaParams {
    checkKnownOptions("rsa", raw, ["bits"]);
    return {
      bits: intOption("rsa", raw, "bits", { default: 3072, allowed: RSA_SIZES }) as RsaBits,
    };
  },
  paramsToJson: (p) => ({ bits: p.bits }),
  async derive(secret: Uint8Array, params: RsaParams): Promise<DerivationResult> {
    assertRoundSecret(secret);
    const { bits } = rsa.parseParams(rsa.paramsToJson(params));
    const generator = new DeterministicGenerator(secret, RSA_LABEL, { bits });
    const { p, q, d } = await generateRsaPrimes(generator, bits);
    const privateKey = rsaPrivateKeyFromPrimes(p, q, RSA_PUBLIC_EXPONENT, d);
    const publicKey = createPublicKey(privateKey);
    return {
      purpose: "rsa",
      algorithm: `rsa-${bits}/v1`,
      public: {
        bits,
        e: Number(RSA_PUBLIC_EXPONENT),
        n: (p * q).toString(16),
        spki: publicKey.export({ type: "spki", format: "pem" }) as string,
        fingerprint: fingerprintOf(publicKey),
      },
      secret: {
        pkcs8: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
      },
    };
  },
};
