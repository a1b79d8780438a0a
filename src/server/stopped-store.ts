/**
 * A stopped server's key_store, opened by a maintenance command (`dkeygen store compact`,
 * `dkeygen store copy`): the data folder must exist, its lock is taken (a running server holds
 * it), the key_store and its store.key must both be there, and the store is opened — every line's
 * MAC and the head file verified — or the command is refused with what to do.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { Secret } from "../crypto/secret.js";
import { LockFile } from "../datadir/lock-file.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { Logger } from "../logging.js";
import { FileKeyStore, type FileKeyStoreOptions } from "../store/file.js";
import {
  KEY_STORE_FILE,
  KEY_STORE_HEAD_FILE,
  loadOrCreateKeyFile,
  STORE_KEY_FILE,
} from "./runtime.js";

export interface StoppedStoreOptions {
  dataDir: string;
  /** What the command does, for its refusals: "compact", "copy". */
  verb: string;
  /** What to do when a server holds the folder. */
  whenBusy: string;
  /** Why the store cannot go on without store.key ("the store cannot be verified"). */
  withoutKey: string;
  /** The key_store's head file, if not <dataDir>/key_store.head. */
  storeHeadFile?: string;
  logger?: Pick<Logger, "warn" | "error">;
  /** The rest of the store's options (retention, clock). */
  store?: Omit<FileKeyStoreOptions, "path" | "storeKey" | "lock" | "headPath" | "logger">;
}

export interface StoppedStore {
  store: FileKeyStore;
  /** The store key: the caller wipes it once done. */
  storeKey: Secret;
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() === true;
}

/** Opens `dataDir`'s key_store for a maintenance command; the store owns the lock from here. */
export async function openStoppedStore(options: StoppedStoreOptions): Promise<StoppedStore> {
  const { dataDir } = options;
  const storePath = join(dataDir, KEY_STORE_FILE);
  const keyPath = join(dataDir, STORE_KEY_FILE);
  if (!(await stat(dataDir).catch(() => undefined))?.isDirectory()) {
    throw new DkeygenError(ErrorCodes.NOT_FOUND, `The data folder ${dataDir} does not exist.`);
  }
  const lock = await LockFile.acquire(`${storePath}.lock`, {
    what: `the data folder ${dataDir}`,
    busy: ["in use by", options.whenBusy],
    ...(options.logger ? { log: options.logger } : {}),
  });
  let store: FileKeyStore;
  let storeKey: Secret | undefined;
  try {
    if (!(await isFile(storePath))) {
      throw new DkeygenError(
        ErrorCodes.NOT_FOUND,
        `The data folder ${dataDir} has no key_store: nothing to ${options.verb} (is it a server's data folder?).`,
      );
    }
    if (!(await isFile(keyPath))) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `The key store ${storePath} has no key file ${keyPath}; without it ${options.withoutKey}. ` +
          "Restore store.key from your backup.",
      );
    }
    storeKey = await loadOrCreateKeyFile(keyPath);
    store = new FileKeyStore({
      ...options.store,
      path: storePath,
      storeKey: storeKey.expose(),
      lock,
      headPath: options.storeHeadFile ?? join(dataDir, KEY_STORE_HEAD_FILE),
      ...(options.logger ? { logger: options.logger } : {}),
    });
  } catch (error) {
    storeKey?.wipe();
    await lock.release();
    throw error;
  }
  try {
    // Verifies every line's MAC and the head file, or refuses (E_STORE_CORRUPT); a store that
    // fails to open releases the lock.
    await store.open();
  } catch (error) {
    storeKey.wipe();
    throw error;
  }
  return { store, storeKey };
}
