/**
 * Server pinning. A client records the fingerprint of each server's key on first contact (trust
 * on first use) or takes one given in advance; from then on a server showing another key is
 * refused with an error naming both fingerprints. Pins live in known_servers.json, by URL.
 */
import { join } from "node:path";
import { readJsonFile, writeJsonFile } from "../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../errors.js";

export const PINS_FILE = "known_servers.json";

interface PinEntry {
  fingerprint: string;
  pinnedAt: string;
}

export class PinStore {
  readonly #path: string;

  constructor(dataDir: string) {
    this.#path = join(dataDir, PINS_FILE);
  }

  async get(url: string): Promise<string | undefined> {
    const pins = (await readJsonFile<Record<string, PinEntry>>(this.#path)) ?? {};
    return Object.hasOwn(pins, url) ? pins[url]?.fingerprint : undefined;
  }

  async set(url: string, fingerprint: string): Promise<void> {
    const pins = (await readJsonFile<Record<string, PinEntry>>(this.#path)) ?? {};
    pins[url] = { fingerprint, pinnedAt: new Date().toISOString() };
    await writeJsonFile(this.#path, pins, 0o644);
  }
}

export function pinMismatch(url: string, expected: string, presented: string): DkeygenError {
  return new DkeygenError(
    ErrorCodes.PIN_MISMATCH,
    `The server at ${url} presented key ${presented}, but ${expected} is pinned for it. ` +
      "Refusing to connect: either the server's key was replaced or someone is in between. " +
      `If the change is expected, remove the entry from ${PINS_FILE} or pass --server-fingerprint.`,
  );
}

/**
 * Checks a presented fingerprint against the pin (or the expected one given in advance), writing
 * nothing. Throws PIN_MISMATCH when they differ; "new" when nothing is pinned for `url` yet (or
 * the pin differs from a fingerprint given in advance, which wins), "matched" otherwise. A client
 * records a new pin (`recordPin`) only once the server has proved it holds that key.
 */
export async function comparePin(
  pins: PinStore,
  url: string,
  presented: string,
  expected?: string,
): Promise<"new" | "matched"> {
  const stored = await pins.get(url);
  const pinned = expected ?? stored;
  if (pinned !== undefined && pinned !== presented) throw pinMismatch(url, pinned, presented);
  return stored === presented ? "matched" : "new";
}

/** Records `fingerprint` as the pin of `url` (trust on first use, after the server's proof). */
export async function recordPin(pins: PinStore, url: string, fingerprint: string): Promise<void> {
  if ((await pins.get(url)) !== fingerprint) await pins.set(url, fingerprint);
}
