/**
 * The contributor's entropy pool: randomness from its user (keyboard, a file, standard input) is
 * hashed into a pool together with OS randomness, and every round draws from the pool mixed with
 * fresh OS randomness. User input is only ever added, never trusted alone: weak or even hostile
 * input cannot make a draw weaker than the OS CSPRNG.
 *
 *   state_0   = SHA-512(LP("dkeygen/v1/entropy-pool", user input, os(64)))
 *   draw_i    = SHA-512(LP("dkeygen/v1/entropy-draw", state_i, os(32)))
 *   state_i+1 = SHA-512(LP("dkeygen/v1/entropy-ratchet", state_i))
 *
 * The ratchet makes earlier draws unrecoverable from a later state.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { lengthPrefixed } from "../crypto/canonical.js";
import { osRandom, type RandomSource } from "../crypto/random.js";
import { DkeygenError, ErrorCodes } from "../errors.js";

const sha512 = (data: Uint8Array) => new Uint8Array(createHash("sha512").update(data).digest());

/** Input files larger than this are refused: entropy is not improved by gigabytes. */
export const MAX_ENTROPY_FILE_BYTES = 16 * 1024 * 1024;

export class EntropyPool {
  #state: Uint8Array;
  readonly #random: RandomSource;
  /** Where the user's part came from, for the config and logs ("os", "keyboard", "file"). */
  readonly source: string;

  constructor(userInput: Uint8Array, source: string, random: RandomSource = osRandom) {
    this.#random = random;
    this.source = source;
    this.#state = sha512(lengthPrefixed("dkeygen/v1/entropy-pool", userInput, random(64)));
  }

  /** 64 bytes for one round. */
  draw(): Uint8Array {
    const out = sha512(lengthPrefixed("dkeygen/v1/entropy-draw", this.#state, this.#random(32)));
    const next = sha512(lengthPrefixed("dkeygen/v1/entropy-ratchet", this.#state));
    this.#state.fill(0);
    this.#state = next;
    return out;
  }

  toJSON(): string {
    return `EntropyPool(${this.source})`;
  }
}

async function readBounded(path: string): Promise<Uint8Array> {
  const handle = path === "-" ? undefined : await open(path, "r");
  const stream = handle ? handle.createReadStream() : process.stdin;
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of stream) {
      total += (chunk as Buffer).length;
      if (total > MAX_ENTROPY_FILE_BYTES) {
        throw new DkeygenError(
          ErrorCodes.INVALID_INPUT,
          `The entropy input is over ${MAX_ENTROPY_FILE_BYTES} bytes; give a smaller one.`,
        );
      }
      chunks.push(chunk as Buffer);
    }
  } finally {
    await handle?.close();
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/**
 * Reads the user's randomness from `file:PATH` (or `file:-` / `-` for standard input). Only a
 * hash of it is kept.
 */
export async function entropyFromFile(path: string): Promise<Uint8Array> {
  let data: Uint8Array;
  try {
    data = await readBounded(path);
  } catch (error) {
    if (error instanceof DkeygenError) throw error;
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `Could not read entropy from ${path === "-" ? "standard input" : path}: ${(error as Error).message}`,
    );
  }
  if (data.length === 0) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `${path === "-" ? "Standard input" : path} is empty; it gives no entropy.`,
    );
  }
  const digest = sha512(lengthPrefixed("dkeygen/v1/entropy-file", data));
  data.fill(0);
  return digest;
}
