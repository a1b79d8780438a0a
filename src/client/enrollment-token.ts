/**
 * The single-use enrollment token a new contributor presents at its first join (docs/PROTOCOL.md
 * §8), read from a file (`--token-file`) or DKEYGEN_ENROLL_TOKEN and never from the command line:
 * any user of the machine can read another's argv (`ps`, /proc/PID/cmdline), while a process's
 * environment is readable only by its owner.
 */
import { open } from "node:fs/promises";
import { DkeygenError, ErrorCodes } from "../errors.js";

export const ENROLL_TOKEN_ENV = "DKEYGEN_ENROLL_TOKEN";

/** What `dkeygen enroll` prints, and what the `join` message accepts (§4). */
export const ENROLLMENT_TOKEN_PATTERN = /^dkt_[A-Za-z0-9_-]{8,32}\.[A-Za-z0-9_-]{43}$/;

/** A token is 83 characters at most; a file much longer than that is not a token file. */
const MAX_TOKEN_FILE_BYTES = 1024;

async function readBounded(path: string): Promise<Buffer> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (cause) {
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `Cannot read the enrollment token file ${path}: ${(cause as Error).message}`,
      { cause },
    );
  }
  try {
    // Read one byte past the limit, so an oversized file (or /dev/zero) is told apart.
    const buffer = Buffer.alloc(MAX_TOKEN_FILE_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) break;
    }
    return buffer.subarray(0, length);
  } catch (cause) {
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `Cannot read the enrollment token file ${path}: ${(cause as Error).message}`,
      { cause },
    );
  } finally {
    await handle.close();
  }
}

/**
 * The enrollment token from `file` if given, else from `env` (DKEYGEN_ENROLL_TOKEN; empty counts
 * as unset), else undefined. Surrounding whitespace is ignored. An empty or malformed token is
 * refused with E_INVALID_INPUT, naming where it came from and never what it held.
 */
export async function readEnrollmentToken(source: {
  file?: string;
  env?: string;
}): Promise<string | undefined> {
  let text: string;
  let origin: string;
  if (source.file !== undefined) {
    const bytes = await readBounded(source.file);
    origin = `The enrollment token file ${source.file}`;
    if (bytes.length > MAX_TOKEN_FILE_BYTES) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        `${origin} is larger than ${MAX_TOKEN_FILE_BYTES} bytes; it should hold just the token dkeygen enroll printed (dkt_<id>.<secret>).`,
      );
    }
    text = bytes.toString("utf8");
  } else {
    if (source.env === undefined || source.env.trim() === "") return undefined;
    text = source.env;
    origin = ENROLL_TOKEN_ENV;
  }
  const token = text.trim();
  if (token === "") {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `${origin} is empty; it should hold the token dkeygen enroll printed (dkt_<id>.<secret>).`,
    );
  }
  if (!ENROLLMENT_TOKEN_PATTERN.test(token)) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `${origin} does not hold an enrollment token: expected one line dkt_<id>.<secret>, as dkeygen enroll prints it.`,
    );
  }
  return token;
}
