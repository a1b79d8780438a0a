/**
 * The sealing thread of the distribution server (a worker_threads worker). It holds the delivery
 * keys the main thread made (delivery.ts) and does the per-delivery AES-256-GCM work: associated
 * data, encryption, base64url. The main thread sends one message per turn of its event loop with
 * every delivery of that turn, so the cost of crossing threads is paid per batch, not per request,
 * and the main thread is left with HTTP and the store.
 *
 * Messages in (SealRequest): delivery keys to learn (`keys`, raw 32-byte keys by kid), jobs, and
 * kids to forget once the jobs are done. Message out (SealReply): one result per job, in order. A
 * job whose kid is not known gets an error result (a main-thread bug, never a secret); the thread
 * keeps going.
 */
import { createSecretKey, type KeyObject } from "node:crypto";
import { parentPort } from "node:worker_threads";
import { toBase64url } from "../../crypto/base64url.js";
import { aesGcmSeal } from "../../crypto/envelope.js";
import { osRandom } from "../../crypto/random.js";
import { type DeliveryKind, deliveryAad } from "../../protocol/signed-data.js";

export interface SealJob {
  kid: string;
  kind: DeliveryKind;
  requestId: string;
  fingerprint: string;
  recordId: string;
  /** The payload, JSON. */
  payload: string;
}

export interface SealRequest {
  id: number;
  keys: Array<[kid: string, raw: Uint8Array]>;
  forget: string[];
  jobs: SealJob[];
}

export type SealResult = { iv: string; ct: string; tag: string } | { error: string };

export interface SealReply {
  id: number;
  results: SealResult[];
}

const keys = new Map<string, KeyObject>();

function sealOne(job: SealJob): SealResult {
  const key = keys.get(job.kid);
  if (!key) return { error: "unknown delivery key" };
  const plaintext = Buffer.from(job.payload, "utf8");
  try {
    const iv = osRandom(12);
    const aad = deliveryAad(job.kind, job.requestId, job.fingerprint, job.recordId);
    const { ciphertext, tag } = aesGcmSeal(key, iv, plaintext, aad);
    return { iv: toBase64url(iv), ct: toBase64url(ciphertext), tag: toBase64url(tag) };
  } finally {
    plaintext.fill(0);
  }
}

parentPort?.on("message", (request: SealRequest) => {
  for (const [kid, raw] of request.keys) {
    keys.set(kid, createSecretKey(raw));
    raw.fill(0);
  }
  const reply: SealReply = { id: request.id, results: request.jobs.map(sealOne) };
  // After the jobs: a key used for the last time in this batch is forgotten in it.
  for (const kid of request.forget) keys.delete(kid);
  parentPort!.postMessage(reply);
});
