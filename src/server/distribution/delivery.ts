/**
 * Deliveries to requesting clients: a JSON payload encrypted with the hybrid envelope — AES-256-GCM
 * under a content key wrapped with RSA-OAEP-256 to the requester's registered key — with the kind,
 * request id, requester fingerprint and record id as GCM associated data (protocol/signed-data.ts
 * deliveryAad). Only the holder of the requester's private key can open it, and only as the
 * answer to that request.
 *
 * The wrapped content key (a "delivery key", named by a random 16-byte `kid`) is reused for one
 * requester for a short time (default 5 minutes, at most 2^20 deliveries) instead of being made
 * per delivery. The RSA wrap is the single most expensive step of a delivery on both sides (tens
 * of microseconds to encrypt on the server, milliseconds to decrypt on the client), and a relying
 * service fetching thousands of OTPs pays it once. What stays per delivery: a fresh 96-bit IV and
 * the per-request associated data, so no delivery can be replayed as the answer to another. GCM's
 * limit for random IVs under one key (2^32 messages) is far away. The wrapped key is bound to its
 * requester and kid by its OAEP label:
 *
 *   label = LP("dkeygen/v1/delivery-key", V, requesterFingerprint, kid)
 *
 * A lifetime of 0 makes a fresh delivery key for every delivery.
 *
 * The AES-GCM work itself runs on a sealing thread (seal-worker.ts): the main thread makes and
 * wraps delivery keys and hands the thread each turn's deliveries as one message, which keeps the
 * per-request crypto off the thread that serves HTTP. If the thread dies, the deliveries it held
 * fail with E_OPERATIONAL and the next delivery starts a new one.
 */
import { Worker } from "node:worker_threads";
import { toBase64url } from "../../crypto/base64url.js";
import { ENVELOPE_ALG, rsaOaepEncrypt } from "../../crypto/envelope.js";
import type { RandomSource } from "../../crypto/random.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import type { JsonObject } from "../../json.js";
import { deliveryKeyMac } from "../../protocol/answer-auth.js";
import type { DeliveryEnvelopeWire } from "../../protocol/messages.js";
import { type DeliveryKind, deliveryKeyLabel } from "../../protocol/signed-data.js";
import type { Requester } from "../requesters.js";
import type { SealJob, SealReply, SealRequest, SealResult } from "./seal-worker.js";

export type { DeliveryKind };

interface DeliveryKey {
  kid: string;
  /** The raw key until the sealing thread has it (then zeroed and dropped). */
  raw: Uint8Array | undefined;
  ek: string;
  /** The key's MAC under the requester's response key (answer-auth.ts deliveryKeyMac). */
  km: string;
  /** The response key `km` was made with: a new credential (requester add --replace) needs a new key. */
  responseKey: Buffer;
  expiresAt: number;
  uses: number;
}

interface Waiting {
  job: SealJob;
  resolve(result: SealResult): void;
  reject(error: Error): void;
}

const threadFailed = () =>
  new DkeygenError(
    ErrorCodes.OPERATIONAL,
    "The delivery could not be sealed (the sealing thread stopped); retry.",
  );

/** The main thread's end of the sealing thread: batches a turn's jobs into one message. */
class SealThread {
  #worker: Worker | undefined;
  /** Kids the running thread knows. */
  readonly #known = new Set<string>();
  #keys: Array<[string, Uint8Array]> = [];
  #forget: string[] = [];
  #queue: Waiting[] = [];
  #scheduled = false;
  #nextId = 0;
  readonly #inFlight = new Map<number, Waiting[]>();
  #closed = false;

  /** True if `key` can still be used: the thread has it, or it has not been sent yet. */
  usable(key: DeliveryKey): boolean {
    return key.raw !== undefined || this.#known.has(key.kid);
  }

  seal(key: DeliveryKey, job: SealJob): Promise<SealResult> {
    if (this.#closed) return Promise.reject(threadFailed());
    if (!this.#known.has(key.kid)) {
      this.#known.add(key.kid);
      this.#keys.push([key.kid, key.raw!]);
      key.raw = undefined;
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ job, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Tells the thread to drop a delivery key that is no longer used. */
  forget(kid: string): void {
    if (this.#known.delete(kid)) this.#forget.push(kid);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
    // Whatever was still queued or in the thread will not be sealed now.
    for (const w of [...this.#queue, ...[...this.#inFlight.values()].flat()]) {
      w.reject(threadFailed());
    }
    this.#queue = [];
    this.#inFlight.clear();
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0 || this.#closed) return;
    const waiting = this.#queue;
    this.#queue = [];
    const id = this.#nextId++;
    const request: SealRequest = {
      id,
      keys: this.#keys,
      forget: this.#forget,
      jobs: waiting.map((w) => w.job),
    };
    this.#keys = [];
    this.#forget = [];
    this.#inFlight.set(id, waiting);
    try {
      this.#start().postMessage(request);
    } catch {
      this.#inFlight.delete(id);
      for (const w of waiting) w.reject(threadFailed());
    } finally {
      for (const [, raw] of request.keys) raw.fill(0);
    }
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL("./seal-worker.js", import.meta.url));
    worker.unref();
    worker.on("message", (reply: SealReply) => {
      const waiting = this.#inFlight.get(reply.id);
      this.#inFlight.delete(reply.id);
      waiting?.forEach((w, i) => {
        w.resolve(reply.results[i]!);
      });
    });
    worker.on("error", () => {}); // "exit" follows and does the work
    worker.on("exit", () => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      // The keys it knew died with it; they are gone from here too, so their deliveries fail
      // and the next delivery to each requester makes a new key.
      this.#known.clear();
      for (const waiting of this.#inFlight.values())
        for (const w of waiting) w.reject(threadFailed());
      this.#inFlight.clear();
    });
    this.#worker = worker;
    return worker;
  }
}

export const DEFAULT_DELIVERY_KEY_TTL_MS = 5 * 60_000;
const MAX_USES = 1 << 20;

export class DeliverySealer {
  readonly #ttlMs: number;
  readonly #random: RandomSource;
  readonly #clock: () => number;
  /** By requester fingerprint (a re-registered key gets a new entry). */
  readonly #keys = new Map<string, DeliveryKey>();
  readonly #thread = new SealThread();

  constructor(options: { ttlMs: number; random: RandomSource; clock: () => number }) {
    this.#ttlMs = options.ttlMs;
    this.#random = options.random;
    this.#clock = options.clock;
  }

  #keyFor(requester: Requester): DeliveryKey {
    const now = this.#clock();
    const current = this.#keys.get(requester.fingerprint);
    const responseKey = requester.responseKey;
    if (!responseKey) {
      // Refused at authentication already (such a registration must be re-credentialed).
      throw new DkeygenError(ErrorCodes.UNAUTHORIZED, "This requester has no response key.");
    }
    if (current) {
      if (
        current.expiresAt > now &&
        current.uses < MAX_USES &&
        this.#thread.usable(current) &&
        current.responseKey.equals(responseKey)
      ) {
        return current;
      }
      this.#thread.forget(current.kid);
      this.#keys.delete(requester.fingerprint);
    }
    const kidBytes = this.#random(16);
    const raw = this.#random(32);
    const kid = toBase64url(kidBytes);
    const wrapped = rsaOaepEncrypt(
      requester.publicKey,
      raw,
      deliveryKeyLabel(requester.fingerprint, kid),
    );
    const ek = toBase64url(wrapped);
    const fresh: DeliveryKey = {
      kid,
      raw,
      ek,
      km: toBase64url(deliveryKeyMac(responseKey, requester.fingerprint, kid, ek)),
      responseKey,
      expiresAt: now + this.#ttlMs,
      uses: 0,
    };
    if (this.#ttlMs > 0) this.#keys.set(requester.fingerprint, fresh);
    return fresh;
  }

  async seal(
    requester: Requester,
    kind: DeliveryKind,
    requestId: string,
    recordId: string,
    payload: JsonObject,
  ): Promise<DeliveryEnvelopeWire> {
    const deliveryKey = this.#keyFor(requester);
    deliveryKey.uses++;
    const sealing = this.#thread.seal(deliveryKey, {
      kid: deliveryKey.kid,
      kind,
      requestId,
      fingerprint: requester.fingerprint,
      recordId,
      payload: JSON.stringify(payload),
    });
    // A key made for this delivery alone is dropped by the thread once it is used.
    if (this.#ttlMs <= 0) this.#thread.forget(deliveryKey.kid);
    const result = await sealing;
    if ("error" in result) {
      throw new DkeygenError(ErrorCodes.OPERATIONAL, "The delivery could not be sealed; retry.");
    }
    return {
      alg: ENVELOPE_ALG,
      kid: deliveryKey.kid,
      ek: deliveryKey.ek,
      km: deliveryKey.km,
      ...result,
    };
  }

  /** Stops the sealing thread; deliveries still in it fail. */
  close(): Promise<void> {
    this.#keys.clear();
    return this.#thread.close();
  }
}
