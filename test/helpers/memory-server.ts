/**
 * A key generation server on the in-memory transport (src/transport/memory.ts): the same
 * KeygenServer, with no sockets, for session tests and fuzzing. Also a relay that sits between a
 * client and such a server and may rewrite, drop or inject frames, as a man in the middle would.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { join } from "node:path";
import { Contributor } from "../../src/client/contributor.js";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import { EntropyPool } from "../../src/client/entropy.js";
import { PinStore } from "../../src/client/pins.js";
import { osRandom } from "../../src/crypto/random.js";
import { Secret } from "../../src/crypto/secret.js";
import type { Logger } from "../../src/logging.js";
import { ContributorRegistry, issueEnrollmentToken } from "../../src/server/enrollment.js";
import { identityFromPrivateKey, type ServerIdentity } from "../../src/server/identity.js";
import { KeygenServer, type KeygenServerConfig } from "../../src/server/keygen-server.js";
import { MemoryKeyStore } from "../../src/store/memory.js";
import { MemoryListener } from "../../src/transport/memory.js";
import type { Connection } from "../../src/transport/types.js";
import { captureLogger, tempDir } from "./ceremony.js";

let sharedKey: KeyObject | undefined;
/** One RSA-3072 key for all in-memory servers of a test process (making one takes a while). */
export function testServerKey(): KeyObject {
  sharedKey ??= generateKeyPairSync("rsa", { modulusLength: 3072 }).privateKey;
  return sharedKey;
}

/**
 * A contributor that reaches a server through `dial` (a memory server's, or a relay's), enrolled
 * with a fresh token of `server`'s data folder, in its own folder `name` there. Not started.
 */
export async function memoryContributor(
  server: { dataDir: string },
  dial: () => Promise<Connection>,
  options: { name: string; fingerprint?: string; joinName?: string },
): Promise<{ contributor: Contributor; pins: PinStore }> {
  const home = join(server.dataDir, options.name);
  const { token } = await issueEnrollmentToken(server.dataDir);
  const pins = new PinStore(home);
  const contributor = new Contributor({
    serverUrl: "memory://dkeygen",
    state: await loadOrCreateContributorState(home),
    entropy: new EntropyPool(new Uint8Array(0), "os"),
    pins,
    ...(options.fingerprint === undefined ? {} : { serverFingerprint: options.fingerprint }),
    ...(options.joinName === undefined ? {} : { name: options.joinName }),
    token,
    reconnect: false,
    dial,
  });
  return { contributor, pins };
}

export interface MemoryServer {
  server: KeygenServer;
  listener: MemoryListener;
  store: MemoryKeyStore;
  identity: ServerIdentity;
  adminToken: Secret;
  dataDir: string;
  log: ReturnType<typeof captureLogger>;
  /** Opens a client connection (what a dialer returns). */
  dial(): Promise<Connection>;
  /** Enrolls and starts `count` contributors on this server; resolves once all joined. */
  contributors(count: number): Promise<Contributor[]>;
  close(): Promise<void>;
}

export async function startMemoryServer(
  options: {
    identity?: ServerIdentity;
    config?: Partial<KeygenServerConfig>;
    logger?: Logger;
  } = {},
): Promise<MemoryServer> {
  const dir = await tempDir("dkeygen-mem-");
  const log = captureLogger();
  const identity = options.identity ?? identityFromPrivateKey(testServerKey());
  const store = new MemoryKeyStore();
  await store.open();
  const adminToken = new Secret(osRandom(32));
  const registry = await ContributorRegistry.load(dir.path);
  const server = new KeygenServer(
    { identity, registry, store, adminToken, logger: options.logger ?? log.logger },
    { roundTimeoutMs: 3000, ...options.config },
  );
  const listener = new MemoryListener();
  server.attach(listener);
  const started: Contributor[] = [];
  const memory: MemoryServer = {
    server,
    listener,
    store,
    identity,
    adminToken,
    dataDir: dir.path,
    log,
    dial: async () => listener.connect(),
    async contributors(count) {
      const batch = await Promise.all(
        Array.from({ length: count }, async (_, i) => {
          const name = `m${started.length + i}`;
          const home = join(dir.path, name);
          const { token } = await issueEnrollmentToken(dir.path, { name });
          const state = await loadOrCreateContributorState(home);
          const contributor = new Contributor({
            serverUrl: listener.url,
            state,
            entropy: new EntropyPool(new Uint8Array(0), "os"),
            pins: new PinStore(home),
            serverFingerprint: identity.fingerprint,
            token,
            reconnect: false,
            dial: memory.dial,
          });
          await contributor.start();
          return contributor;
        }),
      );
      started.push(...batch);
      return batch;
    },
    async close() {
      for (const contributor of started) await contributor.stop();
      await server.stop();
      await listener.close();
      await store.close();
      await dir.remove();
    },
  };
  return memory;
}

/**
 * A man in the middle: every connection dialled through it is relayed to `upstream`, each frame
 * passed through `edit` first (return undefined to drop it). `inject` sends a frame of the
 * relay's own to the server on the last connection.
 */
export class Relay {
  readonly #upstream: () => Promise<Connection>;
  readonly #edit: (direction: "up" | "down", frame: string) => string | undefined;
  #lastUp: Connection | undefined;
  #lastDown: Connection | undefined;
  readonly seen: { direction: "up" | "down"; frame: string }[] = [];

  constructor(
    upstream: () => Promise<Connection>,
    edit: (direction: "up" | "down", frame: string) => string | undefined = (_d, f) => f,
  ) {
    this.#upstream = upstream;
    this.#edit = edit;
  }

  /** A dialer for clients: connects them through this relay. */
  readonly dial = async (): Promise<Connection> => {
    const listener = new MemoryListener();
    const server = await this.#upstream();
    listener.onConnection((down) => {
      this.#lastUp = server;
      this.#lastDown = down;
      down.onFrame((frame) => this.#pass("up", frame.toString("utf8"), server));
      server.onFrame((frame) => this.#pass("down", frame.toString("utf8"), down));
      down.onClose((info) => server.close(info.code, info.reason));
      server.onClose((info) => down.close(info.code, info.reason));
    });
    return listener.connect();
  };

  #pass(direction: "up" | "down", frame: string, to: Connection): void {
    this.seen.push({ direction, frame });
    const out = this.#edit(direction, frame);
    if (out !== undefined) to.send(out);
  }

  /** Sends `frame` to the server as if the client had. */
  inject(frame: string): void {
    this.#lastUp?.send(frame);
  }

  /** Sends `frame` to the client as if the server had. */
  injectDown(frame: string): void {
    this.#lastDown?.send(frame);
  }
}
