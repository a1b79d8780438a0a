/**
 * A `dkeygen distributor`: the distribution HTTP API alone, on a PostgreSQL key store beside one
 * `dkeygen server` (which runs the rounds, refills the OTP pool and keeps the transparency log).
 * Run any number of them on one database; every rule another process could contradict is decided
 * there (claims, TOTP steps, attempts and lockouts, requesters and revocations), so they agree.
 *
 * What it needs: the store's URL and its key (the server's `store.key`, read, never made here: a
 * new key would not be the database's). No server identity: deliveries are sealed to the
 * requester's key, answers MACed under the requester's response key from the registry. It serves
 * no /v1/log/* routes (the checkpoints are signed by the server and are not in the database), runs
 * no rounds (rounds-elsewhere.ts: TOTP/HOTP enrollment is 503 naming the server) and only claims
 * from the pool (otp-pool.ts without rounds); records from before held records existed are handed
 * out only when their round is in the database's log (logged-rounds.ts).
 */
import type { FastifyInstance } from "fastify";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import type { Logger } from "../../logging.js";
import { PostgresKeyStore } from "../../store/postgres.js";
import { isLoopbackHost } from "../../transport/tls.js";
import { PostgresRequesterStore } from "../postgres-requester-store.js";
import { RequesterRegistry } from "../requesters.js";
import { loadTlsCredentials, type TlsCredentials, type TlsFiles } from "../tls-credentials.js";
import { buildDistributionApp, type DistributionConfig } from "./app.js";
import { loggedInStore } from "./logged-rounds.js";
import { OtpPool } from "./otp-pool.js";
import { roundsElsewhere } from "./rounds-elsewhere.js";
import { postgresWindows } from "./shared-window-limiter.js";
import { PostgresAttemptStore } from "./verification/postgres-attempt-store.js";

export interface StartDistributorOptions {
  /** The PostgreSQL store (postgres://…) the key generation server uses. */
  storeUrl: string;
  /** Its 32-byte store key (the server's store.key); copied, and wiped by the caller. */
  storeKey: Uint8Array;
  host?: string;
  port?: number;
  logger: Logger;
  config?: Partial<DistributionConfig>;
  /** Lockout after failed verifications: give the server's values (counted in the database). */
  lockout?: { maxFailures?: number; lockMs?: number };
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: TlsFiles;
  /** The clock of OTP expiry, lockouts and TOTP steps (tests move it). */
  clock?: () => number;
}

export interface RunningDistributor {
  url: string;
  store: PostgresKeyStore;
  /** The certificate it serves, when it speaks TLS. */
  tls?: Omit<TlsCredentials, "cert" | "key" | "wipe">;
  stop(): Promise<void>;
}

export async function startDistributor(
  options: StartDistributorOptions,
): Promise<RunningDistributor> {
  const tls = options.tls ? await loadTlsCredentials(options.tls) : undefined;
  try {
    return await startWith(options, tls);
  } finally {
    // The listener holds its own (OpenSSL) copy by now, or failed to start.
    tls?.wipe();
  }
}

async function startWith(
  options: StartDistributorOptions,
  tls: TlsCredentials | undefined,
): Promise<RunningDistributor> {
  const { logger } = options;
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 7422;
  // A store key that is not the database's own is refused when the store opens.
  const store = new PostgresKeyStore({ url: options.storeUrl, storeKey: options.storeKey, logger });
  const requesterStore = new PostgresRequesterStore(store, options.storeKey);
  await store.open();
  let requesters: RequesterRegistry | undefined;
  let app: FastifyInstance | undefined;
  let pool: OtpPool | undefined;
  try {
    requesters = await RequesterRegistry.open(requesterStore);
    pool = new OtpPool({ store, size: 0, digits: 6, logger, logged: loggedInStore(store) });
    app = await buildDistributionApp(
      {
        store,
        requesters,
        pool,
        rounds: roundsElsewhere,
        role: "distributor",
        windows: postgresWindows(store),
        limiter: new PostgresAttemptStore(store, {
          maxFailures: options.lockout?.maxFailures ?? 5,
          lockMs: options.lockout?.lockMs ?? 15 * 60_000,
          ...(options.clock ? { clock: options.clock } : {}),
        }),
        logger,
        ...(options.clock ? { clock: options.clock } : {}),
        ...(tls ? { tls } : {}),
      },
      options.config,
    );
    let url: string;
    try {
      const address = await app.listen({ host, port });
      url = tls ? address.replace(/^http:/, "https:") : address;
    } catch (cause) {
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        `Cannot listen for HTTP on ${host}:${port}: ${(cause as Error).message}`,
        { cause },
      );
    }
    requesters.watch();
    if (!tls && !isLoopbackHost(host)) {
      logger.warn(
        { listener: "distribution", host },
        "listening WITHOUT TLS on a non-loopback address: requester credentials, codes to verify and metadata travel in the clear (deliveries stay sealed); give --tls-cert and --tls-key",
      );
    }
    const certificate = tls
      ? (({ cert: _c, key: _k, wipe: _w, ...described }) => described)(tls)
      : undefined;
    logger.info(
      {
        httpUrl: url,
        store: store.kind,
        storeUrl: store.shownUrl,
        ...(certificate ? { tlsCertificate: certificate.fingerprint256 } : {}),
      },
      "distributor listening",
    );
    // Narrowed for the closure below.
    const [running, listening, registry] = [pool, app, requesters];
    let stopped: Promise<void> | undefined;
    return {
      url,
      store,
      ...(certificate ? { tls: certificate } : {}),
      stop() {
        stopped ??= (async () => {
          await running.stop();
          registry.close();
          await listening.close();
          await store.close();
        })();
        return stopped;
      },
    };
  } catch (error) {
    await pool?.stop();
    requesters?.close();
    await app?.close().catch(() => {});
    await store.close().catch(() => {});
    throw error;
  }
}
