/**
 * Randomness as an explicit dependency. Everything that needs random bytes takes a `RandomSource`,
 * so the pure layers (protocol/, derive/) never reach for a global RNG and tests can inject one.
 * The only production source is the OS CSPRNG (node:crypto randomFillSync → getrandom(2)).
 */
import { randomFillSync } from "node:crypto";

export type RandomSource = (length: number) => Uint8Array;

/** The operating system's CSPRNG. */
export const osRandom: RandomSource = (length) => randomFillSync(new Uint8Array(length));
