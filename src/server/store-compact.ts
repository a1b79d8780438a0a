/**
 * `dkeygen store compact`: compacts a stopped server's key_store file (store/compaction.ts,
 * PROTOCOL §10.4). It takes the data folder's lock (a running server holds it, and compacts by
 * itself), opens the store (verifying every line and the head file), retires what is due, and
 * compacts with the retention given; the report says what changed. Nothing secret is read.
 */
import { join } from "node:path";
import type { Logger } from "../logging.js";
import type { CompactionReport } from "../store/file.js";
import { KEY_STORE_FILE } from "./runtime.js";
import { openStoppedStore } from "./stopped-store.js";

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

export async function compactStoreFile(options: StoreCompactOptions): Promise<StoreCompactReport> {
  const { store, storeKey } = await openStoppedStore({
    dataDir: options.dataDir,
    verb: "compact",
    whenBusy:
      "a running server compacts its key_store by itself (see --retain-used); stop it to compact now",
    withoutKey: "the store cannot be verified",
    ...(options.storeHeadFile === undefined ? {} : { storeHeadFile: options.storeHeadFile }),
    ...(options.logger ? { logger: options.logger } : {}),
    store: {
      retainUsedMs: options.retainUsedMs,
      compactAtBytes: Number.POSITIVE_INFINITY,
      retireEveryMs: 0,
    },
  });
  storeKey.wipe();
  try {
    const retired = await store.retireDue();
    const report = await store.compact();
    return {
      store: join(options.dataDir, KEY_STORE_FILE),
      retired,
      liveRecords: store.liveRecords,
      ...report,
    };
  } finally {
    await store.close();
  }
}
