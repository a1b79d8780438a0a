/**
 * Record ids: ULIDs (https://github.com/ulid/spec). 26 characters of Crockford base32: a 48-bit
 * Unix time in milliseconds (10 characters) followed by 80 random bits (16 characters). Ids sort
 * as strings in the order they were made, which is what lets the stores answer "oldest first" by
 * comparing ids.
 *
 * `UlidGenerator` is monotonic (the spec's "monotonicity" section): within one millisecond, or if
 * the clock steps back, the next id is the previous one's random part plus one, so ids from one
 * generator strictly increase. The random bits come from an injected `RandomSource`.
 */
import { osRandom, type RandomSource } from "../crypto/random.js";

/** Crockford's base32 alphabet: no I, L, O or U. In ASCII order, so string order is id order. */
export const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TIME_CHARS = 10;
const RANDOM_BYTES = 10;
const MAX_TIME = 2 ** 48 - 1;
const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

export const ULID_LENGTH = 26;

/** True for a well-formed ULID in canonical (upper case) form. */
export function isUlid(text: unknown): text is string {
  return typeof text === "string" && ULID.test(text);
}

/** The millisecond timestamp a ULID carries. */
export function ulidTime(id: string): number {
  if (!isUlid(id)) throw new TypeError(`ulidTime: "${id}" is not a ULID`);
  let time = 0;
  for (let i = 0; i < TIME_CHARS; i++) time = time * 32 + CROCKFORD.indexOf(id[i]!);
  return time;
}

function encodeTime(time: number): string {
  let out = "";
  for (let i = 0; i < TIME_CHARS; i++) {
    out = CROCKFORD[time % 32]! + out;
    time = Math.floor(time / 32);
  }
  return out;
}

/** 80 bits as 16 characters, five bits at a time, most significant first. */
function encodeRandom(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += CROCKFORD[(buffer >> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  return out;
}

function decodeRandom(text: string): Uint8Array {
  const out = new Uint8Array(RANDOM_BYTES);
  let buffer = 0;
  let bits = 0;
  let index = 0;
  for (const char of text) {
    buffer = (buffer << 5) | CROCKFORD.indexOf(char);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[index++] = (buffer >> bits) & 0xff;
    }
    buffer &= (1 << bits) - 1;
  }
  return out;
}

/** Adds one to a big-endian number in place; false if it wrapped around to zero. */
function increment(bytes: Uint8Array): boolean {
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] !== 0xff) {
      bytes[i]! += 1;
      return true;
    }
    bytes[i] = 0;
  }
  return false;
}

export interface UlidGeneratorOptions {
  random?: RandomSource;
  /** Milliseconds since the epoch; `Date.now` by default. */
  now?: () => number;
}

export class UlidGenerator {
  readonly #random: RandomSource;
  readonly #now: () => number;
  #lastTime = -1;
  #lastRandom: Uint8Array = new Uint8Array(RANDOM_BYTES);

  constructor(options: UlidGeneratorOptions = {}) {
    this.#random = options.random ?? osRandom;
    this.#now = options.now ?? Date.now;
  }

  /** A new id, strictly greater than every id this generator made or was shown (`observe`). */
  next(): string {
    const now = this.#now();
    if (!Number.isInteger(now) || now < 0 || now > MAX_TIME) {
      throw new RangeError(`UlidGenerator: clock value ${now} is not a 48-bit millisecond time`);
    }
    if (now > this.#lastTime) {
      this.#lastTime = now;
      this.#lastRandom = this.#freshRandom();
    } else if (!increment(this.#lastRandom)) {
      // 2^80 ids in one millisecond cannot happen by counting; it means the random part started
      // near its maximum. Move to the next millisecond rather than fail, and stay monotonic.
      this.#lastTime += 1;
      this.#lastRandom = this.#freshRandom();
    }
    return encodeTime(this.#lastTime) + encodeRandom(this.#lastRandom);
  }

  /**
   * Makes every later id greater than `id`. A store calls this with the newest id it loaded, so
   * ids keep increasing across restarts even if the clock went back in between.
   */
  observe(id: string): void {
    const time = ulidTime(id);
    const random = decodeRandom(id.slice(TIME_CHARS));
    if (
      time > this.#lastTime ||
      (time === this.#lastTime && Buffer.compare(random, this.#lastRandom) > 0)
    ) {
      this.#lastTime = time;
      this.#lastRandom = random;
    }
  }

  #freshRandom(): Uint8Array {
    const bytes = this.#random(RANDOM_BYTES);
    if (!(bytes instanceof Uint8Array) || bytes.length !== RANDOM_BYTES) {
      throw new TypeError(`UlidGenerator: the random source must return ${RANDOM_BYTES} bytes`);
    }
    // A copy: `increment` works in place and the source's buffer is not ours.
    return new Uint8Array(bytes);
  }
}
