/**
 * `dkeygen store compact`: compacts a stopped server's key_store file (store/compaction.ts,
 * PROTOCOL §10.4). It takes the data folder's lock (a running server holds it, and compacts by
 * itself), opens the store (verifying every line and the head file), retires what is due, and
 * compacts with the retention given; the report says what changed. Nothing secret is read.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { LockFile } from "../datadir/lock-file.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { Logger } from "../logging.js";
import { type CompactionReport, FileKeyStore } from "../store/file.js";
import {
  KEY_STORE_FILE,
  KEY_STORE_HEAD_FILE,
  loadOrCreateKeyFile,
  STORE_KEY_FILE,
} from "./runtime.js";

export interface StoreCompactOptions {
  dataDir: string;
  /** How long retired OTP records stay (`--retain-used`); `Infinity` keeps them all. */
  retainUsedMs: number;
  storeHeadFile?: string;
  logger?: Logger;
}

export interface StoreCompactReport extends CompactionReport {
  store: string;
  /** Records retired by this run (due while the server was stopped). */
  retired: number;
  liveRecords: number;
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() === true;
}

export async function compactStoreFile(options: StoreCompactOptions): Promise<StoreCompactReport> {
  const { dataDir } = options;
  const storePath = join(dataDir, KEY_STORE_FILE);
  const keyPath = join(dataDir, STORE_KEY_FILE);
  if (!(await stat(dataDir).catch(() => undefined))?.isDirectory()) {
    throw new DkeygenError(ErrorCodes.NOT_FOUND, `The data folder ${dataDir} does not exist.`);
  }
  const lock = await LockFile.acquire(`${storePath}.lock`, {
    what: `the data folder ${dataDir}`,
    busy: [
      "in use by",
      "a running server compacts its key_store by itself (see --retain-used); stop it to compact now",
    ],
    ...(options.logger ? { log: options.logger } : {}),
  });
  let store: FileKeyStore | undefined;
  try {
    if (!(await isFile(storePath))) {
      throw new DkeygenError(
        ErrorCodes.NOT_FOUND,
        `The data folder ${dataDir} has no key_store: nothing to compact (is it a server's data folder?).`,
      );
    }
    if (!(await isFile(keyPath))) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `The key store ${storePath} has no key file ${keyPath}; without it the store cannot be ` +
          "verified. Restore store.key from your backup.",
      );
    }
    const storeKey = await loadOrCreateKeyFile(keyPath);
    try {
      store = new FileKeyStore({
        path: storePath,
        storeKey: storeKey.expose(),
        lock,
        headPath: options.storeHeadFile ?? join(dataDir, KEY_STORE_HEAD_FILE),
        retainUsedMs: options.retainUsedMs,
        compactAtBytes: Number.POSITIVE_INFINITY,
        retireEveryMs: 0,
        ...(options.logger ? { logger: options.logger } : {}),
      });
    } finally {
      storeKey.wipe();
    }
  } catch (error) {
    await lock.release();
    throw error;
  }
  // The store owns the lock from here and releases it when it closes (or fails to open).
  await store.open();
  try {
    const retired = await store.retireDue();
    const report = await store.compact();
    return { store: storePath, retired, liveRecords: store.liveRecords, ...report };
  } finally {
    await store.close();
  }
}
