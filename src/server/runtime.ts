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
 *   contributors.json    enrolled contributors                            0600
 *   enrollment-tokens.jsonl  hashes of issued enrollment tokens          0600
 *   requesters.json      registered requesting clients                    0600
 *   server.json          where the running server listens                 0644
 *
 * Beside the WebSocket endpoint it starts the key distribution server (HTTP, src/server/
 * distribution/) with its OTP pool, unless told not to.
 */
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { osRandom } from "../crypto/random.js";
import { Secret } from "../crypto/secret.js";
import {
  ensureDataDir,
  loadOrCreateSecret,
  readJsonFile,
  writeJsonFile,
} from "../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { Logger } from "../logging.js";
import { FileKeyStore } from "../store/file.js";
import type { KeyStore } from "../store/types.js";
import type { Listener } from "../transport/types.js";
import { listenWs } from "../transport/ws.js";
import { buildDistributionApp, type DistributionConfig } from "./distribution/app.js";
import { MemoryAttemptLimiter } from "./distribution/attempts.js";
import { OtpPool } from "./distribution/otp-pool.js";
import { ContributorRegistry } from "./enrollment.js";
import { loadOrCreateServerIdentity } from "./identity.js";
import { KeygenServer, type KeygenServerConfig } from "./keygen-server.js";
import { RequesterRegistry } from "./requesters.js";

export const ADMIN_TOKEN_FILE = "admin.token";
export const STORE_KEY_FILE = "store.key";
export const KEY_STORE_FILE = "key_store";
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
  /** Another store instead of the key_store file (tests, PostgreSQL). */
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
  stop(): Promise<void>;
}

/** Loads (or makes, 0600) a 32-byte secret kept base64url in a file. */
export async function loadOrCreateKeyFile(path: string): Promise<Secret> {
  const { data } = await loadOrCreateSecret(path, () => `${toBase64url(osRandom(32))}\n`);
  return new Secret(fromBase64url(data.toString("utf8").trim(), path, 32));
}

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const { dataDir, logger } = options;
  await ensureDataDir(dataDir);
  const { identity, created } = await loadOrCreateServerIdentity(dataDir, options.passphrase);
  const adminToken = await loadOrCreateKeyFile(join(dataDir, ADMIN_TOKEN_FILE));
  const registry = await ContributorRegistry.load(dataDir);
  const requesters = await RequesterRegistry.load(dataDir);
  const outdated = requesters.withoutResponseKey();
  if (outdated.length > 0) {
    // Their answers could not be authenticated, so the distribution server refuses them.
    logger.warn(
      { requesters: outdated },
      "requester registrations from before authenticated answers are refused until re-credentialed: dkeygen requester add NAME --replace --public-key FILE",
    );
  }
  let store = options.store;
  if (!store) {
    const storeKey = await loadOrCreateKeyFile(
      options.storeKeyFile ?? join(dataDir, STORE_KEY_FILE),
    );
    store = new FileKeyStore({
      path: join(dataDir, KEY_STORE_FILE),
      storeKey: storeKey.expose(),
      logger,
    });
  }
  await store.open();

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
    });
    app = await buildDistributionApp(
      {
        store,
        requesters,
        pool,
        rounds: server,
        limiter: new MemoryAttemptLimiter({
          maxFailures: options.lockout?.maxFailures ?? 5,
          lockMs: options.lockout?.lockMs ?? 15 * 60_000,
        }),
        logger,
        ...(options.clock ? { clock: options.clock } : {}),
      },
      http.config,
    );
    try {
      httpUrl = await app.listen({ host: http.host ?? "127.0.0.1", port: http.port ?? 7421 });
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

  const info: ServerInfo = {
    url: listener.url,
    ...(httpUrl === undefined ? {} : { httpUrl }),
    fingerprint: identity.fingerprint,
    pid: process.pid,
    startedAt: new Date().toISOString(),
  };
  await writeJsonFile(join(dataDir, SERVER_INFO_FILE), info, 0o644);
  logger.info(
    { url: listener.url, httpUrl, fingerprint: identity.fingerprint, store: store.kind },
    "server listening",
  );

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
    stop() {
      stopped ??= (async () => {
        await pool?.stop();
        requesters.close();
        await app?.close();
        await server.stop();
        await listener.close();
        await store.close();
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
