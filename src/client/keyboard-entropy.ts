/**
 * `--entropy keyboard`: the user types at random and we gather the key values and their timings
 * (nanosecond clock) into a SHA-512 hash, with a progress bar of the bits estimated so far.
 *
 * The estimate is deliberately stingy, because we cannot see how random a person really is:
 *   timing  1 bit  when the gap between keys differs from the previous gap by ≥ 2 ms
 *           ½ bit  when it differs by ≥ 0.5 ms (a held-down key auto-repeats far more evenly)
 *   value   1 bit  when the key differs from both of the two keys before it
 *   paste   0 bits for input arriving as a burst of several characters at once
 * so at most 2 bits a keystroke and 64 keystrokes at the very least for the default 128 bits.
 * Everything typed is hashed whether it earns credit or not; the OS CSPRNG is mixed in later
 * (entropy.ts), so the estimate only decides when to stop asking.
 */
import { createHash } from "node:crypto";
import { DkeygenError, ErrorCodes } from "../errors.js";

export const DEFAULT_KEYBOARD_BITS = 128;

/** Bits credited for one keystroke, given the last two gaps (ns) and the recent keys. */
export function creditKeystroke(
  gap: bigint | undefined,
  previousGap: bigint | undefined,
  key: string,
  recentKeys: readonly string[],
): number {
  let bits = 0;
  if (gap !== undefined && previousGap !== undefined) {
    const jitter = gap > previousGap ? gap - previousGap : previousGap - gap;
    if (jitter >= 2_000_000n) bits += 1;
    else if (jitter >= 500_000n) bits += 0.5;
  }
  if (!recentKeys.includes(key)) bits += 1;
  return bits;
}

export interface KeyboardEntropyOptions {
  input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: NodeJS.WritableStream;
  targetBits?: number;
  now?: () => bigint;
}

function progressBar(bits: number, target: number): string {
  const width = 30;
  const filled = Math.min(width, Math.floor((bits / target) * width));
  return `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${Math.floor(Math.min(bits, target))}/${target} bits  type at random...`;
}

/** Collects keystrokes until `targetBits` are estimated; resolves to a 64-byte digest. */
export function collectKeyboardEntropy(options: KeyboardEntropyOptions): Promise<Uint8Array> {
  const { input, output } = options;
  const target = options.targetBits ?? DEFAULT_KEYBOARD_BITS;
  const now = options.now ?? process.hrtime.bigint;
  if (input.isTTY === false || (input.isTTY === undefined && input === process.stdin)) {
    return Promise.reject(
      new DkeygenError(
        ErrorCodes.USAGE,
        "--entropy keyboard needs an interactive terminal; use --entropy file:PATH or os instead.",
      ),
    );
  }
  const hash = createHash("sha512");
  hash.update("dkeygen/v1/keyboard-entropy");
  let bits = 0;
  let last: bigint | undefined;
  let lastGap: bigint | undefined;
  const recent: string[] = [];

  return new Promise((resolve, reject) => {
    const finish = (error?: Error) => {
      input.removeListener("data", onData);
      input.removeListener("end", onEnd);
      input.setRawMode?.(false);
      input.pause();
      output.write("\n");
      if (error) reject(error);
      else resolve(new Uint8Array(hash.digest()));
    };
    const onEnd = () =>
      finish(new DkeygenError(ErrorCodes.USAGE, "Input ended before enough entropy was gathered."));
    const onData = (chunk: Buffer | string) => {
      const data = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      const t = now();
      if (data.includes(0x03) || data.includes(0x04)) {
        finish(new DkeygenError(ErrorCodes.USAGE, "Entropy collection cancelled."));
        return;
      }
      const stamp = Buffer.alloc(8);
      stamp.writeBigUInt64BE(BigInt.asUintN(64, t));
      hash.update(stamp).update(data);
      const gap = last === undefined ? undefined : t - last;
      const key = data.toString("latin1");
      // A burst of several characters is a paste or a repeat, not typing.
      if (data.length <= 4) bits += creditKeystroke(gap, lastGap, key, recent);
      recent.push(key);
      if (recent.length > 2) recent.shift();
      last = t;
      lastGap = gap;
      output.write(progressBar(bits, target));
      if (bits >= target) finish();
    };
    input.setRawMode?.(true);
    input.on("data", onData);
    input.on("end", onEnd);
    input.resume();
    output.write(progressBar(0, target));
  });
}
