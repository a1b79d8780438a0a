/**
 * The key distribution server: a fastify app, built apart from `listen()` so tests can also call
 * `app.inject()`. JSON over versioned paths (/v1/...), documented as OpenAPI at /v1/openapi.json.
 *
 * Every request passes, in order: a per-address rate limit, a 404 when no route takes it, then on
 * protected routes authentication by requester credential and a per-credential rate limit (all
 * onRequest, before the body is even read, so a stranger cannot probe validation or make us
 * parse), then the body size limit and schema validation. Every error leaves through one handler (http-errors.ts) that
 * maps it to a stable code and status (src/errors.ts), so a client never sees a 500 for its own
 * mistake and never sees internals for ours. Verification is verification/verifier.ts's; the
 * routes (routes/) parse, call it or the store, and answer.
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import swagger from "@fastify/swagger";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { osRandom, type RandomSource } from "../../crypto/random.js";
import { MAX_HOTP_LOOK_AHEAD } from "../../derive/hotp.js";
import { DkeygenError, describeError, ErrorCodes, isDkeygenError } from "../../errors.js";
import type { Logger } from "../../logging.js";
import { ANSWER_MAC_HEADER, answerMac } from "../../protocol/answer-auth.js";
import type { KeyRecord, KeyStore } from "../../store/types.js";
import { type TlsServerOptions, tlsServerSettings } from "../../transport/tls.js";
import type { Requester, RequesterRegistry } from "../requesters.js";
import type { RoundRequest } from "../round-request.js";
import type { TransparencyLog } from "../transparency-log.js";
import { withRequestIdHeader } from "./answers.js";
import { DEFAULT_DELIVERY_KEY_TTL_MS, DeliverySealer } from "./delivery.js";
import { DEFAULT_HOTP_WINDOWS, type HotpWindows } from "./hotp-check.js";
import {
  clientErrorHandler,
  frameworkErrorHandler,
  noRoute,
  setErrorHandlers,
} from "./http-errors.js";
import type { OtpPool } from "./otp-pool.js";
import { Quotas } from "./quotas.js";
import { FixedWindowLimiter, memoryWindows, type WindowLimiterFactory } from "./rate-limit.js";
import { registerHealthRoutes } from "./routes/health.js";
import { registerKeyRoutes } from "./routes/keys.js";
import { registerLogRoutes } from "./routes/log.js";
import { registerOtpRoutes } from "./routes/otp.js";
import { registerRecoveryRoutes } from "./routes/recovery.js";
import { registerRequesterRoutes } from "./routes/requester.js";
import { registerTotpRoutes } from "./routes/totp.js";
import type { AttemptStore } from "./verification/attempt-store.js";
import { StoreVerifier, type Verifier } from "./verification/verifier.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The authenticated requesting client (set on protected routes). */
    requester: Requester | null;
    /**
     * Set by a route whose 200 answer is a delivery: every field of that answer is bound by its
     * envelope (associated data and sealed payload) under a delivery key the requester's response
     * key authenticates (`km`), so it carries no answer MAC of its own (PROTOCOL §12.8).
     */
    sealedAnswer: boolean;
  }
}

export interface DistributionConfig {
  /** How long a delivered OTP stays valid unless the request asks otherwise. */
  otpTtlMs: number;
  /** How long a request waits for a refill when the OTP pool is empty. */
  otpWaitMs: number;
  /** Largest request body, in bytes. */
  bodyLimit: number;
  /** A request must arrive whole within this time (slow clients are cut off). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this time. */
  keepAliveTimeoutMs: number;
  /** Requests per minute from one address (0: no limit). */
  rateLimitPerAddress: number;
  /** Requests per minute with one credential (0: no limit). */
  rateLimitPerCredential: number;
  /** How long one wrapped delivery key serves a requester (0: a new RSA wrap per delivery). */
  deliveryKeyTtlMs: number;
  /** TOTP enrollment rounds running at once, server-wide (0: no cap). */
  enrollmentsAtOnce: number;
  /** TOTP enrollment rounds one requester may have running at once (0: no cap). */
  enrollmentsAtOncePerRequester: number;
  /** OTPs one requester may request per minute (0: no cap). */
  otpPerMinutePerRequester: number;
  /** HOTP look-ahead: counters after the expected one a code may be from (0..100). */
  hotpWindow: number;
  /** HOTP auto-resynchronisation window (≤ hotpWindow: none; at most 1000). */
  hotpResyncWindow: number;
  /** How long a first HOTP resynchronisation code waits for its successor. */
  hotpResyncMs: number;
}

export const DEFAULT_DISTRIBUTION_CONFIG: DistributionConfig = {
  otpTtlMs: 5 * 60_000,
  otpWaitMs: 5_000,
  bodyLimit: 16 * 1024,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  rateLimitPerAddress: 6_000,
  rateLimitPerCredential: 60_000,
  deliveryKeyTtlMs: DEFAULT_DELIVERY_KEY_TTL_MS,
  enrollmentsAtOnce: 16,
  enrollmentsAtOncePerRequester: 4,
  otpPerMinutePerRequester: 3_000,
  hotpWindow: DEFAULT_HOTP_WINDOWS.window,
  hotpResyncWindow: DEFAULT_HOTP_WINDOWS.resyncWindow,
  hotpResyncMs: DEFAULT_HOTP_WINDOWS.resyncMs,
};

/** What the routes need from the key generation server. */
export interface RoundService {
  runRound(request: RoundRequest): Promise<KeyRecord>;
  readonly connectedContributors: readonly unknown[];
  /** FROST signing with a threshold key (sign-coordinator.ts); absent: no signing here. */
  thresholdSign?(
    record: KeyRecord,
    message: Uint8Array,
    requester: string,
  ): Promise<{ signature: Uint8Array; signers: string[] }>;
}

export interface DistributionComponents {
  store: KeyStore;
  requesters: RequesterRegistry;
  pool: OtpPool;
  rounds: RoundService;
  /** Verification attempts and lockouts (verification/attempt-store.ts). */
  limiter: AttemptStore;
  /**
   * Where the per-credential rate limit and the per-requester OTP quota are counted (default:
   * this process's memory; with a PostgreSQL store, the database: shared-window-limiter.ts).
   */
  windows?: WindowLimiterFactory;
  logger: Logger;
  clock?: () => number;
  random?: RandomSource;
  /** Serve HTTPS with this certificate and key; plain HTTP without. */
  tls?: TlsServerOptions;
  /** The transparency log of rounds, served to anyone under /v1/log/ (none without it). */
  log?: TransparencyLog;
  /**
   * "server" (the default): beside the key generation server, which runs rounds. "distributor": a
   * `dkeygen distributor` (distributor.ts) on a store the server refills; readiness is then the
   * database's, not the pool's or the contributors'.
   */
  role?: DistributionRole;
}

export type DistributionRole = "server" | "distributor";

/** What every route module gets. */
export interface RouteContext {
  store: KeyStore;
  pool: OtpPool;
  rounds: RoundService;
  /** Every code verification and unlock (verification/verifier.ts). */
  verifier: Verifier;
  logger: Logger;
  clock: () => number;
  config: DistributionConfig;
  /** Seals deliveries to requesters (delivery.ts). */
  sealer: DeliverySealer;
  /** The registered requesters (a split record's holders are shown to each other by name). */
  requesters: RequesterRegistry;
  /** Beside the key generation server, or a distributor (DistributionComponents.role). */
  role: DistributionRole;
  /** Enrollment-round caps and OTP quotas per requester (quotas.ts). */
  quotas: Quotas;
  /** Randomness (recovery code salts). */
  random: RandomSource;
  /** onRequest hook of protected routes: authenticates the requester (401 otherwise). */
  authenticate: (
    request: FastifyRequest,
    reply: FastifyReply,
    done: (error?: Error) => void,
  ) => void;
}

const UNAUTHORIZED = () =>
  new DkeygenError(
    ErrorCodes.UNAUTHORIZED,
    "Authentication required: a valid requester credential.",
  );

const MUST_RECREDENTIAL = (name: string) =>
  new DkeygenError(
    ErrorCodes.UNAUTHORIZED,
    `The registration ${name} predates authenticated answers; the admin must give it a new credential (dkeygen requester add ${name} --replace --public-key FILE).`,
  );

const rateLimited = (retryAfterSeconds: number) =>
  new DkeygenError(ErrorCodes.RATE_LIMITED, "Too many requests; slow down.", {
    retryAfterSeconds,
  });

const shuttingDown = () =>
  new DkeygenError(ErrorCodes.UNAVAILABLE, "The server is shutting down.", {
    retryAfterSeconds: 1,
  });

/** A request id a client may choose: a UUID (any version), so logs hold nothing else. */
const REQUEST_ID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export async function buildDistributionApp(
  components: DistributionComponents,
  config: Partial<DistributionConfig> = {},
): Promise<FastifyInstance> {
  const settings = { ...DEFAULT_DISTRIBUTION_CONFIG, ...config };
  const hotp = hotpWindows(settings);
  const { logger } = components;
  const clock = components.clock ?? Date.now;
  const app = createFastify(settings, components.tls, logger);
  app.decorateRequest("requester", null);
  app.decorateRequest("sealedAnswer", false);
  addRequestHooks(app, settings, clock);
  const windows = components.windows ?? memoryWindows;
  const authenticate = authenticator(components.requesters, settings, clock, windows);
  setErrorHandlers(app, logger);
  addResponseHooks(app, logger);
  await registerOpenApi(app);

  const random = components.random ?? osRandom;
  const sealer = new DeliverySealer({ ttlMs: settings.deliveryKeyTtlMs, random, clock });
  app.addHook("onClose", () => sealer.close());
  registerRoutes(
    app,
    {
      store: components.store,
      pool: components.pool,
      rounds: components.rounds,
      verifier: new StoreVerifier({ store: components.store, attempts: components.limiter, hotp }),
      logger,
      clock,
      config: settings,
      sealer,
      requesters: components.requesters,
      role: components.role ?? "server",
      quotas: new Quotas(settings, windows),
      random,
      authenticate,
    },
    components.log,
  );
  await app.ready();
  return app;
}

/** The HOTP windows of `settings`, checked. */
function hotpWindows(settings: DistributionConfig): HotpWindows {
  const hotp: HotpWindows = {
    window: settings.hotpWindow,
    resyncWindow: settings.hotpResyncWindow,
    resyncMs: settings.hotpResyncMs,
  };
  if (
    !Number.isInteger(hotp.window) ||
    hotp.window < 0 ||
    hotp.window > 100 ||
    !Number.isInteger(hotp.resyncWindow) ||
    hotp.resyncWindow < 0 ||
    hotp.resyncWindow > MAX_HOTP_LOOK_AHEAD ||
    !Number.isSafeInteger(hotp.resyncMs) ||
    hotp.resyncMs < 1
  ) {
    throw new TypeError(
      `hotpWindow must be 0..100, hotpResyncWindow 0..${MAX_HOTP_LOOK_AHEAD}, hotpResyncMs ≥ 1`,
    );
  }
  return hotp;
}

/** The fastify instance over an HTTP(S) server with the timeouts and limits of `settings`. */
function createFastify(
  settings: DistributionConfig,
  tls: TlsServerOptions | undefined,
  logger: Logger,
): FastifyInstance {
  return Fastify({
    logger: false,
    serverFactory: (handler) => httpServer(settings, tls, logger, handler),
    bodyLimit: settings.bodyLimit,
    routerOptions: { maxParamLength: 64 },
    // Requests arriving while the server closes are refused by the onRequest hook, in the API's
    // error shape, instead of fastify's own 503 body.
    return503OnClosing: false,
    clientErrorHandler,
    frameworkErrors: (error, request, reply) =>
      frameworkErrorHandler(error, request as FastifyRequest, reply as FastifyReply),
    // A client may choose its request's id (a UUID in X-Request-Id): deliveries bind it into
    // their associated data, so a client that checks it cannot be fed a recorded older answer.
    requestIdHeader: false,
    genReqId: (request) => {
      const chosen = request.headers["x-request-id"];
      return typeof chosen === "string" && REQUEST_ID.test(chosen)
        ? chosen.toLowerCase()
        : randomUUID();
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
  });
}

/**
 * The server fastify serves on. Node checks request and header timeouts only every
 * connectionsCheckingInterval (30 s by default); check every second so a slow client is cut off
 * close to requestTimeout. With a serverFactory fastify leaves the server's timeouts to it, so all
 * are set here: a whole request within requestTimeout, an idle keep-alive connection closed after
 * keepAliveTimeout, and any connection silent for connectionTimeout closed. With a certificate the
 * same server speaks HTTPS; its TLS handshake, too, must end within requestTimeout.
 */
function httpServer(
  settings: DistributionConfig,
  tls: TlsServerOptions | undefined,
  logger: Logger,
  handler: Parameters<typeof createServer>[1],
) {
  const timeouts = {
    requestTimeout: settings.requestTimeoutMs,
    headersTimeout: settings.requestTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, settings.requestTimeoutMs),
  };
  const server = tls
    ? createHttpsServer(
        { ...timeouts, ...tlsServerSettings(tls, settings.requestTimeoutMs) },
        handler,
      )
    : createServer(timeouts, handler);
  if (tls) {
    server.on("tlsClientError", (error: Error, socket: Socket) =>
      logger.debug({ ip: socket.remoteAddress, err: describeError(error) }, "TLS handshake failed"),
    );
  }
  server.keepAliveTimeout = settings.keepAliveTimeoutMs;
  server.setTimeout(settings.requestTimeoutMs * 3);
  return server;
}

/**
 * The first hook of every request: refused while the server closes, then the per-address rate
 * limit. Hooks are in callback style: on the hot path a promise per hook per request is
 * measurable.
 */
function addRequestHooks(
  app: FastifyInstance,
  settings: DistributionConfig,
  clock: () => number,
): void {
  let closing = false;
  app.addHook("preClose", (done) => {
    closing = true;
    done();
  });
  const perAddress = new FixedWindowLimiter({
    max: settings.rateLimitPerAddress,
    windowMs: 60_000,
  });
  const perAddressLimit = settings.rateLimitPerAddress > 0;
  app.addHook("onRequest", (request, reply, done) => {
    reply.header("x-request-id", request.id);
    if (closing) {
      reply.header("connection", "close");
      return done(shuttingDown());
    }
    const wait = perAddressLimit ? perAddress.hit(request.ip, clock()) : 0;
    if (wait > 0) return done(rateLimited(wait));
    // No route: refused here, before the body is read (http-errors.ts noRoute). Dot segments are
    // resolved by clients, so "/v1/keys/./opening" usually arrives as "/v1/keys/opening": no route.
    done(request.is404 ? noRoute(request) : undefined);
  });
}

/**
 * The onRequest hook of protected routes: the requester whose credential the request bears
 * (401 otherwise), then the per-credential rate limit.
 */
function authenticator(
  requesters: RequesterRegistry,
  settings: DistributionConfig,
  clock: () => number,
  windows: WindowLimiterFactory,
): RouteContext["authenticate"] {
  const perCredential = windows("credential", settings.rateLimitPerCredential, 60_000);
  /** Throws when refused; a promise when the limit must ask the database. */
  const admit = (
    request: FastifyRequest,
    requester: Requester | undefined,
  ): Promise<void> | undefined => {
    if (!requester) throw UNAUTHORIZED();
    // Its answers could not be authenticated (§12.8): it must be re-credentialed first.
    if (!requester.responseKey) throw MUST_RECREDENTIAL(requester.name);
    // Set before the rate limit, so that refusal is authenticated like every other answer.
    request.requester = requester;
    const wait = perCredential.hit(requester.id, clock());
    if (typeof wait !== "number") {
      return wait.then((w) => {
        if (w > 0) throw rateLimited(w);
      });
    }
    if (wait > 0) throw rateLimited(wait);
    return undefined;
  };
  return (request, reply, done) => {
    const header = request.headers.authorization;
    const fail = (error: unknown) => {
      if (isDkeygenError(error, ErrorCodes.UNAUTHORIZED))
        reply.header("www-authenticate", 'Bearer realm="dkeygen"');
      done(error as Error);
    };
    const known = requesters.authenticateKnown(header);
    if (known !== "recheck") {
      try {
        const asking = admit(request, known);
        if (asking) asking.then(() => done(), fail);
        else done();
      } catch (error) {
        fail(error);
      }
      return;
    }
    // Not what was last read: re-read the registry if it changed (a requester added or given a
    // new credential since) and try again. Every refusal of a well-formed credential comes here.
    requesters
      .authenticate(header)
      .then((requester) => admit(request, requester))
      .then(() => done(), fail);
  };
}

/** The served-request log line, and the MAC every answer to an authenticated request carries. */
function addResponseHooks(app: FastifyInstance, logger: Logger): void {
  if (logger.isLevelEnabled?.("debug") ?? true) {
    app.addHook("onResponse", (request, reply, done) => {
      if (reply.statusCode < 400) {
        logger.debug(
          {
            reqId: request.id,
            route: request.routeOptions.url,
            status: reply.statusCode,
            requester: request.requester?.name,
            ms: Math.round(reply.elapsedTime),
          },
          "request served",
        );
      }
      done();
    });
  }

  // Every answer to an authenticated request is MACed under its requester's response key, in
  // this one place over the bytes actually sent, so no route (or error path) can forget
  // (protocol/answer-auth.ts). HEAD answers have no body and carry none; a delivery's 200 answer
  // is authenticated by its envelope instead (sealedAnswer), which spares the hot OTP path an
  // HMAC over every answer.
  app.addHook("onSend", (request, reply, payload, done) => {
    const key = request.requester?.responseKey;
    if (key === undefined || request.method === "HEAD") return done(null, payload);
    if (request.sealedAnswer && reply.statusCode === 200) return done(null, payload);
    const body = typeof payload === "string" || payload instanceof Uint8Array ? payload : "";
    const query = request.url.indexOf("?");
    const path = query < 0 ? request.url : request.url.slice(0, query);
    reply.header(
      ANSWER_MAC_HEADER,
      answerMac(key, request.id, request.method, path, reply.statusCode, body),
    );
    done(null, payload);
  });
}

/** The OpenAPI document the routes' schemas make, served at /v1/openapi.json. */
async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    transform: ({ schema, url }) => ({ schema: withRequestIdHeader(schema), url }),
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "dkeygen key distribution API",
        version: "1",
        description:
          "Hands out OTPs and keys made by dkeygen rounds, each encrypted to the requesting client's " +
          "registered RSA key (RSA-OAEP-256 + AES-256-GCM, docs/PROTOCOL.md §12), and verifies OTP/TOTP codes. " +
          "A `dkeygen distributor` serves the same routes except /v1/log/* (the transparency log is the key " +
          "generation server's: 404 there) and answers TOTP/HOTP enrollment 503 E_UNAVAILABLE (it runs no rounds).",
      },
      components: {
        securitySchemes: {
          credential: { type: "http", scheme: "bearer", description: "dkr_<name>.<secret>" },
        },
      },
    },
  });
}

/** Every route family, each its own module under routes/. */
function registerRoutes(
  app: FastifyInstance,
  context: RouteContext,
  log: TransparencyLog | undefined,
): void {
  registerHealthRoutes(app, context);
  registerOtpRoutes(app, context);
  registerTotpRoutes(app, context);
  registerRecoveryRoutes(app, context);
  registerKeyRoutes(app, context);
  registerRequesterRoutes(app, context);
  if (log) registerLogRoutes(app, log);
  app.get("/v1/openapi.json", { schema: { hide: true } }, async () => app.swagger());
}
