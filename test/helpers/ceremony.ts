/**
 * Test fixtures for the ceremony: servers on loopback port 0 with fresh data folders, enrolled
 * in-process contributors, a raw protocol peer for sending whatever a test wants, and a log sink
 * to assert on log lines.
 */
import { createPublicKey, type KeyObject, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { AdminClient } from "../../src/client/admin-client.js";
import { Contributor, type ContributorEvent } from "../../src/client/contributor.js";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import { EntropyPool } from "../../src/client/entropy.js";
import { PinStore } from "../../src/client/pins.js";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { sealEnvelope } from "../../src/crypto/envelope.js";
import { generateIdentity, rawPublicKey, signMessage } from "../../src/crypto/signature.js";
import { createLogger, type Logger } from "../../src/logging.js";
import { envelopeToWire } from "../../src/protocol/envelope-wire.js";
import { type AnyMessage, decodeMessage, type MessageOf } from "../../src/protocol/messages.js";
import {
  commitSetHash,
  commitSignedData,
  contributionAad,
  contributionCommitment,
  type EnvelopeFields,
  joinSignedData,
  revealSignedData,
} from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import type { DistributionConfig } from "../../src/server/distribution/app.js";
import { contributorIdOf, issueEnrollmentToken } from "../../src/server/enrollment.js";
import type { KeygenServerConfig } from "../../src/server/keygen-server.js";
import {
  ADMIN_TOKEN_FILE,
  loadOrCreateKeyFile,
  type RunningServer,
  startServer,
} from "../../src/server/runtime.js";
import type { KeyStore } from "../../src/store/types.js";
import type { Connection } from "../../src/transport/types.js";
import { dialWs } from "../../src/transport/ws.js";

export async function tempDir(
  prefix = "dkeygen-test-",
): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  // Retried: a contributor stopping may still be finishing a write (its witness state) inside.
  return {
    path,
    remove: () => rm(path, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }),
  };
}

/** A logger whose JSON lines are kept in memory, for assertions about what was logged. */
export function captureLogger(): { logger: Logger; lines: () => string[]; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger({ format: "json", level: "debug", stream });
  const text = () => chunks.join("");
  return { logger, text, lines: () => text().split("\n").filter(Boolean) };
}

export interface TestServer extends RunningServer {
  root: string;
  /** The CA (PEM) test clients trust, when the server speaks TLS. */
  ca?: string;
  log: ReturnType<typeof captureLogger>;
  /** Contributors startContributors started for this server; cleanup stops them first. */
  contributors: Contributor[];
  admin(): Promise<AdminClient>;
  cleanup(): Promise<void>;
}

export async function startTestServer(
  config: Partial<KeygenServerConfig> = {},
  options: {
    allowQuorumOfOne?: boolean;
    dataDir?: string;
    port?: number;
    /** OTP pool size (default 0: no background rounds to disturb a test). */
    otpPool?: number;
    http?: Partial<DistributionConfig>;
    lockout?: { maxFailures?: number; lockMs?: number };
    /** Milliseconds added to the distribution server's clock; change `clockOffset.ms` to move time. */
    clockOffset?: { ms: number };
    /** Both listeners over TLS with these files; `ca` (PEM) is what test clients then trust. */
    tls?: { certFile: string; keyFile: string; ca: string };
    /** Another store instead of the data folder's key_store file (not opened yet). */
    store?: KeyStore;
  } = {},
): Promise<TestServer> {
  const dir = options.dataDir ? undefined : await tempDir();
  const root = options.dataDir ?? dir!.path;
  const log = captureLogger();
  const running = await startServer({
    dataDir: join(root, "server"),
    port: options.port ?? 0,
    logger: log.logger,
    config: { roundTimeoutMs: 5000, ...config },
    http: { port: 0, ...(options.http ? { config: options.http } : {}) },
    otpPool: { size: options.otpPool ?? 0 },
    ...(options.lockout ? { lockout: options.lockout } : {}),
    ...(options.clockOffset ? { clock: () => Date.now() + options.clockOffset!.ms } : {}),
    ...(options.allowQuorumOfOne ? { allowQuorumOfOne: true } : {}),
    ...(options.store ? { store: options.store } : {}),
    ...(options.tls
      ? { tls: { certFile: options.tls.certFile, keyFile: options.tls.keyFile } }
      : {}),
  });
  const ca = options.tls?.ca;
  const started: Contributor[] = [];
  return {
    ...running,
    root,
    log,
    ...(ca === undefined ? {} : { ca }),
    admin: async () =>
      AdminClient.connect({
        url: running.url,
        token: await loadOrCreateKeyFile(join(running.dataDir, ADMIN_TOKEN_FILE)),
        expectedFingerprint: running.fingerprint,
        ...(ca === undefined ? {} : { ca }),
      }),
    contributors: started,
    cleanup: async () => {
      // Contributors first: they write into folders under the root until they stop.
      for (const contributor of started) await contributor.stop();
      await running.stop();
      await dir?.remove();
    },
  };
}

export interface TestContributor {
  contributor: Contributor;
  id: string;
  events: ContributorEvent[];
  dataDir: string;
}

/** Enrolls and starts `count` in-process contributors; resolves once all have joined. */
export async function startContributors(
  server: TestServer,
  count: number,
  prefix = "c",
  options: { reconnect?: { initialMs: number; maxMs: number } } = {},
): Promise<TestContributor[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const name = `${prefix}${i}`;
      const dataDir = join(server.root, name);
      const { token } = await issueEnrollmentToken(server.dataDir, { name });
      const state = await loadOrCreateContributorState(dataDir);
      const contributor = new Contributor({
        serverUrl: server.url,
        state,
        entropy: new EntropyPool(new Uint8Array(0), "os"),
        pins: new PinStore(dataDir),
        token,
        name,
        reconnect: options.reconnect ?? false,
        ...(server.ca === undefined ? {} : { ca: server.ca }),
      });
      const events: ContributorEvent[] = [];
      contributor.onEvent((e) => events.push(e));
      await contributor.start();
      server.contributors.push(contributor);
      return { contributor, id: state.contributorId, events, dataDir };
    }),
  );
}

/** A protocol peer driven by hand: it sends exactly what the test says. */
export class RawPeer {
  readonly connection: Connection;
  readonly received: AnyMessage[] = [];
  /** Every frame this peer received, as text, in order (`received` loses what `next` takes). */
  readonly frames: string[] = [];
  readonly identity: { privateKey: KeyObject; publicKey: KeyObject };
  hello!: MessageOf<"hello">;
  closed: { code: number; reason: string } | undefined;
  #waiters: (() => void)[] = [];

  private constructor(
    connection: Connection,
    identity?: { privateKey: KeyObject; publicKey: KeyObject },
  ) {
    this.connection = connection;
    this.identity = identity ?? generateIdentity();
    connection.onFrame((frame) => {
      this.frames.push(frame.toString("utf8"));
      try {
        this.received.push(decodeMessage(frame));
      } catch {
        return;
      }
      for (const wake of this.#waiters.splice(0)) wake();
    });
    connection.onClose((info) => {
      this.closed = info;
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  static async connect(
    url: string,
    identity?: { privateKey: KeyObject; publicKey: KeyObject },
  ): Promise<RawPeer> {
    const peer = new RawPeer(await dialWs(url), identity);
    peer.hello = (await peer.next("hello")) as MessageOf<"hello">;
    return peer;
  }

  get contributorIdentity(): Uint8Array {
    return rawPublicKey(this.identity.publicKey);
  }

  send(frame: unknown): void {
    this.connection.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /**
   * Waits for the next message of `type` not yet taken (removes it from `received`); with
   * `roundId`, the next one for that round.
   */
  async next<T extends AnyMessage["type"]>(
    type: T,
    timeoutMs = 5000,
    roundId?: string,
  ): Promise<MessageOf<T>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.received.findIndex(
        (m) =>
          m.type === type &&
          (roundId === undefined || (m as { roundId?: string }).roundId === roundId),
      );
      if (index >= 0) return this.received.splice(index, 1)[0] as MessageOf<T>;
      if (this.closed)
        throw new Error(`connection closed (${this.closed.code}) while waiting for ${type}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `no ${type} within ${timeoutMs} ms; got ${this.received.map((m) => m.type)}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The challenge this peer chose for its last join (the server's welcome proof covers it). */
  clientChallenge: Uint8Array = new Uint8Array(randomBytes(32));

  /** Sends a correctly signed join (with a token the first time, and a name if given). */
  join(token?: string, name?: string): void {
    const identity = this.contributorIdentity;
    this.clientChallenge = new Uint8Array(randomBytes(32));
    const signature = signMessage(
      this.identity.privateKey,
      joinSignedData(
        fromBase64url(this.hello.challenge, "challenge", 32),
        this.hello.server.fingerprint,
        identity,
        token ?? "",
        name ?? "",
        this.clientChallenge,
      ),
    );
    this.send({
      type: "join",
      v: PROTOCOL_VERSION,
      identity: toBase64url(identity),
      clientChallenge: toBase64url(this.clientChallenge),
      signature: toBase64url(signature),
      ...(token === undefined ? {} : { token }),
      ...(name === undefined ? {} : { name }),
    });
  }

  close(): void {
    this.connection.close(1000);
  }
}

/**
 * Polls `predicate` (every 10 ms; an async one is awaited before the next poll) until it gives
 * neither undefined nor false, and resolves with that value; rejects after `timeoutMs`.
 */
export function waitFor<T>(
  predicate: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 5000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = async () => {
      let value: T | undefined;
      try {
        value = await predicate();
      } catch (error) {
        reject(error);
        return;
      }
      if (value !== undefined && value !== false) return resolve(value);
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(() => {
        poll().catch(reject);
      }, 10);
    };
    poll().catch(reject);
  });
}

/** What a raw peer keeps between its commit and its reveal. */
export interface RawContribution {
  roundId: string;
  contributorId: string;
  envelope: EnvelopeFields & { alg: "RSA-OAEP-256/A256GCM" };
  commitment: Uint8Array;
  /** The signed `commit` message for it. */
  commit: MessageOf<"commit">;
}

/**
 * A correctly encrypted contribution from `peer` for `open` and its signed commitment (what a
 * contributor sends in the commit phase); reveal it with buildReveal.
 */
export function buildContribution(
  peer: RawPeer,
  open: { roundId: string },
  options: { phrase?: Uint8Array; roundIdForAad?: string } = {},
): RawContribution {
  const spki = fromBase64url(peer.hello.server.publicKey, "server key");
  const serverKey = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  const fingerprint = peer.hello.server.fingerprint;
  const contributorId = contributorIdOf(peer.contributorIdentity);
  const aad = contributionAad(options.roundIdForAad ?? open.roundId, contributorId, fingerprint);
  const sealed = sealEnvelope(serverKey, options.phrase ?? randomBytes(64), aad);
  const envelope = envelopeToWire(sealed);
  const commitment = contributionCommitment(open.roundId, contributorId, fingerprint, envelope);
  return {
    roundId: open.roundId,
    contributorId,
    envelope,
    commitment,
    commit: signCommit(peer, { roundId: open.roundId, contributorId, commitment }),
  };
}

/** Signs (or re-signs) a commit body with `peer`'s identity key. */
export function signCommit(
  peer: RawPeer,
  body: { roundId: string; contributorId: string; commitment: Uint8Array },
): MessageOf<"commit"> {
  const signature = signMessage(
    peer.identity.privateKey,
    commitSignedData(
      body.roundId,
      body.contributorId,
      peer.hello.server.fingerprint,
      body.commitment,
    ),
  );
  return {
    type: "commit",
    v: PROTOCOL_VERSION,
    roundId: body.roundId,
    contributorId: body.contributorId,
    commitment: toBase64url(body.commitment),
    signature: toBase64url(signature),
  };
}

/** The hash of a commit set as a contributor computes it from `round.commits`. */
export function setHashOf(peer: RawPeer, commits: MessageOf<"round.commits">): Uint8Array {
  return commitSetHash(
    commits.roundId,
    peer.hello.server.fingerprint,
    commits.commits.map((c) => ({
      contributorId: c.contributorId,
      commitment: fromBase64url(c.commitment, "commitment", 32),
    })),
  );
}

/**
 * The signed reveal of `contribution` against the commit set `setHash` (or other fields): the
 * signature covers the set hash and the commitment computed from `envelope` as sent.
 */
export function buildReveal(
  peer: RawPeer,
  body: {
    roundId: string;
    contributorId: string;
    envelope: EnvelopeFields & { alg: "RSA-OAEP-256/A256GCM" };
    setHash: Uint8Array;
  },
): MessageOf<"reveal"> {
  const fingerprint = peer.hello.server.fingerprint;
  const commitment = contributionCommitment(
    body.roundId,
    body.contributorId,
    fingerprint,
    body.envelope,
  );
  const signature = signMessage(
    peer.identity.privateKey,
    revealSignedData(body.roundId, body.contributorId, fingerprint, body.setHash, commitment),
  );
  return {
    type: "reveal",
    v: PROTOCOL_VERSION,
    roundId: body.roundId,
    contributorId: body.contributorId,
    setHash: toBase64url(body.setHash),
    envelope: body.envelope,
    signature: toBase64url(signature),
  };
}

/**
 * An honest raw contributor's whole part in the round `open`: commit, wait for the commit set,
 * reveal against it, wait for the receipt. Returns the receipt.
 */
export async function commitAndReveal(
  peer: RawPeer,
  open: { roundId: string },
  options: { phrase?: Uint8Array } = {},
): Promise<MessageOf<"round.receipt">> {
  const contribution = buildContribution(peer, open, options);
  peer.send(contribution.commit);
  const commits = await peer.next("round.commits", 5000, open.roundId);
  peer.send(buildReveal(peer, { ...contribution, setHash: setHashOf(peer, commits) }));
  return peer.next("round.receipt", 5000, open.roundId);
}

/** Connects a raw peer and enrolls it with a fresh token; resolves once welcomed. */
export async function enrolledRawPeer(server: TestServer): Promise<RawPeer> {
  const peer = await RawPeer.connect(server.url);
  const { token } = await issueEnrollmentToken(server.dataDir, {
    name: `raw${Math.floor(Math.random() * 1e6)}`,
  });
  peer.join(token);
  await peer.next("welcome");
  return peer;
}
