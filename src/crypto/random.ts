/**
 * Randomness as an explicit dependency. Everything that needs random bytes takes a `RandomSource`,
 * so the pure layers (protocol/, derive/) never reach for a global RNG and tests can inject one.
 * The only production source is the OS CSPRNG (node:crypto → OpenSSL's DRBG seeded by
 * getrandom(2)).
 *
 * Small requests are served from a 4 KiB buffer refilled from the CSPRNG, the way Node buffers
 * entropy for randomUUID: a call into OpenSSL costs microseconds of locking, and a busy server
 * asks for a few dozen bytes several times per request. Bytes leave the buffer exactly once and
 * are zeroed there as they are handed out; until then up to 4 KiB of future output sits in memory,
 * as exposed to a memory dump as every key the process holds (docs/ARCHITECTURE.md §3).
 */
import { randomFillSync } from "node:crypto";

export type RandomSource = (length: number) => Uint8Array;

const BUFFER_BYTES = 4096;
const SMALL = 256;
const buffer = new Uint8Array(BUFFER_BYTES);
let offset = BUFFER_BYTES;

/** The operating system's CSPRNG. */
export const osRandom: RandomSource = (length) => {
  if (length > SMALL) return randomFillSync(new Uint8Array(length));
  if (offset + length > BUFFER_BYTES) {
    randomFillSync(buffer);
    offset = 0;
  }
  const out = buffer.slice(offset, offset + length);
  buffer.fill(0, offset, offset + length);
  offset += length;
  return out;
};
