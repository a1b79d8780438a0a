/**
 * Assembles a running key generation server from its data folder: the folder itself (0700), the
 * RSA key, the admin token, the store key, the `key_store` file, the contributor registry and the
 * WebSocket listener; writes server.json so local CLI commands find the running server. The CLI,
 * the demo and the tests all start servers through here.
 *
 *   data folder          what                                             mode
 *   server-key.pem       RSA-3072 private key, PKCS#8 (encrypted with a   0600
 *                        passphrase from DKEYGEN_SERVER_PASSPHRASE)
 *   server-key.pub.pem   its public key, SPKI                             0644
 *   admin.token          32 random bytes, base64url; admins prove it      0600
 *   store.key            the key store's key, 32 bytes, base64url         0600
 *   key_store            the key store (append-only, one JSON per line)   0600
 *   key_store.head       its durable end (lines, chain MAC), MACed, so a  0600
 *                        rolled-back key_store is noticed
 *   key_store.lock       who writes the store (and the folder) now         0600
 *   contributors.json    enrolled contributors                            0600
 *   enrollment-tokens.jsonl  hashes of issued enrollment tokens          0600
 *   requesters.json      registered requesting clients                    0600
 *   server.json          where the running server listens                 0644
 *
 * Beside the WebSocket endpoint it starts the key distribution server (HTTP, src/server/
 * distribution/) with its OTP pool, unless told not to.
 *
 * The first thing a start does after making the folder is take the store's lock
 * (`key_store.lock`, also when another store is used): two servers started at once on one empty
 * folder could otherwise both make keys, and the loser's store key would sit beside the winner's
 * records. Key files are also created exclusively (datadir), so a second creator reads the first
 * one's file instead of replacing it. A `key_store` with records (or a head file) but no
 * `store.key` is refused: a new key would make every record unreadable. Given a certificate and key
 * (tls-credentials.ts), both listeners speak TLS (wss://, https://); without, they are plain, and
 * a plain listener off loopback is logged as a warning.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { osRandom } from "../crypto/random.js";
import { Secret } from "../crypto/secret.js";
import {
  ensureDataDir,
  fileExists,
  loadOrCreateSecret,
  readJsonFile,
  writeJsonFile,
} from "../datadir/files.js";
import { LockFile, storeLockOptions } from "../datadir/lock-file.js";
import { DkeygenError, describeError, ErrorCodes } from "../errors.js";
import type { Logger } from "../logging.js";
import { DEFAULT_RETAIN_USED_MS, FileKeyStore } from "../store/file.js";
import { PostgresKeyStore } from "../store/postgres.js";
import type { KeyStore } from "../store/types.js";
import { isLoopbackHost } from "../transport/tls.js";
import type { Listener } from "../transport/types.js";
import { listenWs } from "../transport/ws.js";
import { buildDistributionApp, type DistributionConfig } from "./distribution/app.js";
import { OtpPool } from "./distribution/otp-pool.js";
import { postgresWindows } from "./distribution/shared-window-limiter.js";
import type { AttemptStore } from "./distribution/verification/attempt-store.js";
import { MemoryAttemptStore } from "./distribution/verification/memory-attempt-store.js";
import { PostgresAttemptStore } from "./distribution/verification/postgres-attempt-store.js";
import { ContributorRegistry } from "./enrollment.js";
import { releaseHeldRounds } from "./held-release.js";
import { loadOrCreateServerIdentity, SERVER_KEY_FILE } from "./identity.js";
import { KeygenServer, type KeygenServerConfig } from "./keygen-server.js";
import { PostgresRequesterStore } from "./postgres-requester-store.js";
import type { RequesterStore } from "./requester-store.js";
import { FileRequesterStore, RequesterRegistry } from "./requesters.js";
import { loadTlsCredentials, type TlsCredentials, type TlsFiles } from "./tls-credentials.js";

export const ADMIN_TOKEN_FILE = "admin.token";
export const STORE_KEY_FILE = "store.key";
export const KEY_STORE_FILE = "key_store";
export const KEY_STORE_HEAD_FILE = "key_store.head";
export const SERVER_INFO_FILE = "server.json";

export interface ServerInfo {
  url: string;
  /** The distribution server's base URL, when it runs. */
  httpUrl?: string;
  fingerprint: string;
  pid: number;
  startedAt: string;
}

export interface StartServerOptions {
  dataDir: string;
  host?: string;
  port?: number;
  logger: Logger;
  /** Passphrase for the server key file (DKEYGEN_SERVER_PASSPHRASE). */
  passphrase?: string;
  /** Where the store key lives, if not beside the store in the data folder. */
  storeKeyFile?: string;
  /**
   * Where the store's head file lives (the key_store's durable end, to notice rollbacks), if not
   * beside the store; elsewhere, it also notices a restore of the whole data folder.
   */
  storeHeadFile?: string;
  /**
   * Open the key_store even if it does not match its head file (cut back, restored from an older
   * copy, another history, or no head file yet); the store records that it was told to. Off by
   * default; for one start after an operator decided to go on from such a file.
   */
  acceptStoreRollback?: boolean;
  /** How long retired OTP records stay in the store for audit (ms, `Infinity`: for ever); the
   * stores' own default (one day) when absent. */
  retainUsedMs?: number;
  /**
   * A PostgreSQL database (postgres://…, store/postgres-url.ts) instead of the key_store file;
   * the store key still lives in the data folder (or `storeKeyFile`).
   */
  storeUrl?: string;
  /** Another store instead of the key_store file (tests). */
  store?: KeyStore;
  config?: Partial<KeygenServerConfig>;
  allowQuorumOfOne?: boolean;
  /** The distribution server: where it listens (false: not at all) and its settings. */
  http?: false | { host?: string; port?: number; config?: Partial<DistributionConfig> };
  /** OTP pool: how many ready OTPs to keep (0: no background rounds) and their digits. */
  otpPool?: { size?: number; digits?: number };
  /** Lockout after failed verifications. */
  lockout?: { maxFailures?: number; lockMs?: number };
  /** The distribution server's clock (OTP expiry, lockouts, TOTP steps); tests move it. */
  clock?: () => number;
  /** Serve both listeners over TLS with this certificate and key (PEM files). */
  tls?: TlsFiles;
}

export interface RunningServer {
  server: KeygenServer;
  store: KeyStore;
  url: string;
  /** The distribution server's base URL (http://host:port), when it runs. */
  httpUrl?: string;
  pool?: OtpPool;
  fingerprint: string;
  keyCreated: boolean;
  dataDir: string;
  /**
   * The key store's durable end: line count and chain head (hex), the values its head file
   * keeps; undefined for a store without a chain (not the key_store file).
   */
  storeHead(): StoreHead | undefined;
  /** The certificate both listeners serve, when they speak TLS. */
  tls?: Omit<TlsCredentials, "cert" | "key" | "wipe">;
  stop(): Promise<void>;
}

export interface StoreHead {
  lines: number;
  head: string;
}

/** Loads (or makes, 0600) a 32-byte secret kept base64url in a file. */
export async function loadOrCreateKeyFile(path: string): Promise<Secret> {
  const { data } = await loadOrCreateSecret(path, () => `${toBase64url(osRandom(32))}\n`);
  return new Secret(fromBase64url(data.toString("utf8").trim(), path, 32));
}

/**
 * The store key for the `key_store` at `storePath`: loaded, or made when there is no store yet.
 * A store with content but no key is an error: a new key would make its records unreadable.
 */
export async function loadStoreKey(
  keyPath: string,
  storePath: string,
  headPath: string,
): Promise<Secret> {
  if (
    !(await fileExists(keyPath)) &&
    ((await sizeOf(storePath)) > 0 || (await fileExists(headPath)))
  ) {
    throw new DkeygenError(
      ErrorCodes.STORE_CORRUPT,
      `The key store ${storePath} exists but its key file ${keyPath} is missing. Without ` +
        `that key none of them can be read, so no new key is made: restore store.key (the file ` +
        `${keyPath}) from your backup, or name where it is with --store-key-file.`,
    );
  }
  return loadOrCreateKeyFile(keyPath);
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
}

/** Says, loudly, what a plain listener off loopback exposes. */
function warnIfPlainOffLoopback(
  logger: Logger,
  listener: "websocket" | "distribution",
  host: string,
): void {
  if (isLoopbackHost(host)) return;
  logger.warn(
    { listener, host },
    listener === "websocket"
      ? "listening WITHOUT TLS on a non-loopback address: enrollment tokens and round metadata travel in the clear (contributions stay sealed); give --tls-cert and --tls-key"
      : "listening WITHOUT TLS on a non-loopback address: requester credentials, codes to verify and metadata travel in the clear (deliveries stay sealed); give --tls-cert and --tls-key",
  );
}

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  // First, so a bad certificate or key stops the start before anything is opened.
  const tls = options.tls ? await loadTlsCredentials(options.tls) : undefined;
  try {
    return await startWith(options, tls);
  } finally {
    // Both listeners hold their own (OpenSSL) copies by now, or failed to start.
    tls?.wipe();
  }
}

async function startWith(
  options: StartServerOptions,
  tls: TlsCredentials | undefined,
): Promise<RunningServer> {
  const { dataDir, logger } = options;
  await ensureDataDir(dataDir);
  const storePath = join(dataDir, KEY_STORE_FILE);
  // Before anything is made in the folder: one server per data folder (see the module header).
  const lock = await LockFile.acquire(`${storePath}.lock`, {
    ...storeLockOptions(storePath),
    log: logger,
  });
  try {
    return await startLocked(options, lock, tls);
  } catch (error) {
    // Released by the store when it was handed over; release() is a no-op then.
    await lock.release().catch(() => {});
    throw error;
  }
}

async function startLocked(
  options: StartServerOptions,
  lock: LockFile,
  tls: TlsCredentials | undefined,
): Promise<RunningServer> {
  const { dataDir, logger } = options;
  const { identity, created, reencrypted } = await loadOrCreateServerIdentity(
    dataDir,
    options.passphrase,
  );
  if (reencrypted) {
    logger.warn(
      { file: SERVER_KEY_FILE },
      "the server key was encrypted with PBKDF2 (2,048 iterations, cheap to guess); it was " +
        "re-encrypted with scrypt under the same passphrase",
    );
  }
  const adminToken = await loadOrCreateKeyFile(join(dataDir, ADMIN_TOKEN_FILE));
  const registry = await ContributorRegistry.load(dataDir);
  let store = options.store;
  /** Where requesters are registered: the database's tables with a PostgreSQL store. */
  let requesterStore: RequesterStore = new FileRequesterStore(dataDir);
  if (!store && options.storeUrl !== undefined) {
    const storeKey = await loadOrCreateKeyFile(
      options.storeKeyFile ?? join(dataDir, STORE_KEY_FILE),
    );
    // A store key that is not the database's own is refused when the store opens.
    const postgres = new PostgresKeyStore({
      url: options.storeUrl,
      storeKey: storeKey.expose(),
      logger,
      retainUsedMs: options.retainUsedMs ?? DEFAULT_RETAIN_USED_MS,
    });
    requesterStore = new PostgresRequesterStore(postgres, storeKey.expose());
    store = postgres;
    storeKey.wipe();
  }
  if (!store) {
    const path = join(dataDir, KEY_STORE_FILE);
    const headPath = options.storeHeadFile ?? join(dataDir, KEY_STORE_HEAD_FILE);
    const storeKey = await loadStoreKey(
      options.storeKeyFile ?? join(dataDir, STORE_KEY_FILE),
      path,
      headPath,
    );
    // The store takes the lock over and releases it when it closes.
    store = new FileKeyStore({
      path,
      storeKey: storeKey.expose(),
      logger,
      lock,
      headPath,
      ...(options.acceptStoreRollback ? { acceptRollback: true } : {}),
      ...(options.retainUsedMs === undefined ? {} : { retainUsedMs: options.retainUsedMs }),
    });
    // The store derived its own keys from it and kept no copy.
    storeKey.wipe();
  }
  await store.open();
  let requesters: RequesterRegistry;
  try {
    requesters = await RequesterRegistry.open(requesterStore);
  } catch (error) {
    await store.close();
    throw error;
  }
  await warnOfRequesterFiles(dataDir, requesterStore, requesters, logger);

  const server = new KeygenServer(
    {
      identity,
      registry,
      store,
      adminToken,
      logger,
      requesters,
      ...(options.allowQuorumOfOne ? { allowQuorumOfOne: true } : {}),
    },
    options.config,
  );
  let listener: Listener;
  try {
    listener = await listenWs({
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 7420,
      heartbeatMs: server.config.heartbeatMs,
      ...(tls
        ? {
            tls,
            onTlsError: (error: Error, remote: string) =>
              logger.debug({ remote, err: describeError(error) }, "TLS handshake failed"),
          }
        : {}),
    });
  } catch (cause) {
    await store.close();
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `Cannot listen on ${options.host ?? "127.0.0.1"}:${options.port ?? 7420}: ${(cause as Error).message}`,
      { cause },
    );
  }
  server.attach(listener);

  let app: FastifyInstance | undefined;
  let pool: OtpPool | undefined;
  let httpUrl: string | undefined;
  if (options.http !== false) {
    const http = options.http ?? {};
    pool = new OtpPool({
      store,
      rounds: server,
      size: options.otpPool?.size ?? 100,
      digits: options.otpPool?.digits ?? 6,
      logger,
      // Distributors claim from a PostgreSQL store too: watch the stock, cache no codes.
      shared: store instanceof PostgresKeyStore,
      quorum: () => ({
        connected: server.connectedContributors.length,
        needed: server.config.quorum,
      }),
      contributorUrl: listener.url,
      logged: async (roundId) => {
        await server.log.ready();
        return server.log.indexOf(roundId) !== undefined;
      },
    });
    const filling = pool;
    server.onEvent((event) => {
      if (event.type === "contributor.joined") filling.contributorsChanged();
    });
    app = await buildDistributionApp(
      {
        store,
        requesters,
        pool,
        rounds: server,
        log: server.log,
        ...(store instanceof PostgresKeyStore ? { windows: postgresWindows(store) } : {}),
        limiter: attemptStoreFor(store, {
          maxFailures: options.lockout?.maxFailures ?? 5,
          lockMs: options.lockout?.lockMs ?? 15 * 60_000,
          ...(options.clock ? { clock: options.clock } : {}),
        }),
        logger,
        ...(options.clock ? { clock: options.clock } : {}),
        ...(tls ? { tls } : {}),
      },
      http.config,
    );
    try {
      const address = await app.listen({ host: http.host ?? "127.0.0.1", port: http.port ?? 7421 });
      // fastify names the address http:// whatever its serverFactory made.
      httpUrl = tls ? address.replace(/^http:/, "https:") : address;
    } catch (cause) {
      await app.close();
      await listener.close();
      await store.close();
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        `Cannot listen for HTTP on ${http.host ?? "127.0.0.1"}:${http.port ?? 7421}: ${(cause as Error).message}`,
        { cause },
      );
    }
    if ((options.otpPool?.size ?? 100) > 0) pool.start();
    requesters.watch();
  }

  if (!tls) {
    warnIfPlainOffLoopback(logger, "websocket", options.host ?? "127.0.0.1");
    if (options.http !== false)
      warnIfPlainOffLoopback(logger, "distribution", options.http?.host ?? "127.0.0.1");
  }
  const certificate = tls
    ? (({ cert: _c, key: _k, wipe: _w, ...described }) => described)(tls)
    : undefined;

  const info: ServerInfo = {
    url: listener.url,
    ...(httpUrl === undefined ? {} : { httpUrl }),
    fingerprint: identity.fingerprint,
    pid: process.pid,
    startedAt: new Date().toISOString(),
  };
  await writeJsonFile(join(dataDir, SERVER_INFO_FILE), info, 0o644);
  const storeHead = (): StoreHead | undefined =>
    store instanceof FileKeyStore ? store.chain : undefined;
  const head = storeHead();
  logger.info(
    {
      url: listener.url,
      httpUrl,
      fingerprint: identity.fingerprint,
      store: store.kind,
      ...(store instanceof PostgresKeyStore ? { storeUrl: store.shownUrl } : {}),
      ...(head ? { storeLines: head.lines, storeHead: head.head } : {}),
      ...(certificate
        ? {
            tlsCertificate: certificate.fingerprint256,
            tlsValidTo: certificate.validTo.toISOString(),
          }
        : {}),
    },
    "server listening",
  );
  // No contributor is connected at a start: say what the server waits for.
  logger.info(
    { url: listener.url, quorum: server.config.quorum, connected: 0 },
    `waiting for contributors at ${listener.url}: a round needs ${server.config.quorum}`,
  );

  // Records a stopped server left held (killed between witnessing and release) are released
  // once their rounds' entries are witnessed again; awaited when the server stops.
  const releasing = releaseHeldRounds({
    store,
    log: server.log,
    whenWitnessed: (index, ms) => server.witnessing.whenWitnessed(index, ms),
    logger,
    stopping: () => server.stopping,
    running: (roundId) => server.roundRunning(roundId),
    // The key_store file is this process's alone (locked); a database may have other servers.
    exclusive: !(store instanceof PostgresKeyStore),
  });

  let stopped: Promise<void> | undefined;
  return {
    server,
    store,
    url: listener.url,
    ...(httpUrl === undefined ? {} : { httpUrl }),
    ...(pool === undefined ? {} : { pool }),
    fingerprint: identity.fingerprint,
    keyCreated: created,
    dataDir,
    storeHead,
    ...(certificate ? { tls: certificate } : {}),
    stop() {
      stopped ??= (async () => {
        await pool?.stop();
        requesters.close();
        await app?.close();
        await server.stop();
        await releasing;
        await listener.close();
        await store.close();
        await lock.release();
        adminToken.wipe();
      })();
      return stopped;
    },
  };
}

/** Where the server using `dataDir` listens, from its server.json. */
export async function readServerInfo(dataDir: string): Promise<ServerInfo> {
  const info = await readJsonFile<ServerInfo>(join(dataDir, SERVER_INFO_FILE));
  if (!info) {
    throw new DkeygenError(
      ErrorCodes.UNAVAILABLE,
      `No server has run with data folder ${dataDir} (no ${SERVER_INFO_FILE}); start one with: dkeygen server --data-dir ${dataDir}`,
    );
  }
  return info;
}

/**
 * Where verification attempts and lockouts are counted: in the database beside the records when
 * the store is PostgreSQL (every distribution server on it counts together), else in memory.
 */
function attemptStoreFor(
  store: KeyStore,
  limits: { maxFailures: number; lockMs: number; clock?: () => number },
): AttemptStore {
  return store instanceof PostgresKeyStore
    ? new PostgresAttemptStore(store, limits)
    : new MemoryAttemptStore(limits);
}

/**
 * Warns of registrations the server will refuse: those from before authenticated answers, and,
 * with requesters in the database, a requesters.json in the data folder that is no longer read.
 */
async function warnOfRequesterFiles(
  dataDir: string,
  store: RequesterStore,
  requesters: RequesterRegistry,
  logger: Logger,
): Promise<void> {
  const outdated = requesters.withoutResponseKey();
  if (outdated.length > 0) {
    // Their answers could not be authenticated, so the distribution server refuses them.
    logger.warn(
      { requesters: outdated },
      "requester registrations from before authenticated answers are refused until re-credentialed: dkeygen requester add NAME --replace --public-key FILE",
    );
  }
  if (store instanceof FileRequesterStore) return;
  const file = new FileRequesterStore(dataDir);
  const listed = await file.list().catch(() => ({ requesters: [] }));
  // Those in the database under the same id were copied there (dkeygen store copy): not lost.
  const left = listed.requesters.filter((r) => requesters.get(r.name)?.id !== r.id);
  if (left.length > 0) {
    logger.warn(
      { file: file.where, requesters: left.map((r) => r.name) },
      "requesters.json is not read with a PostgreSQL store: register these requesters in the database (dkeygen requester add NAME --store URL --public-key FILE)",
    );
  }
}
