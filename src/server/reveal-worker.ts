/**
 * A reveal-checking thread (a worker_threads worker, one of the RevealPool's): it holds the
 * server's private key (given as workerData at start) and does, per reveal, everything that costs:
 * the contributor's Ed25519 signature, the commitment, the RSA-OAEP decryption and AES-GCM
 * (contribution-check.ts openReveal). The main thread is left with the cheap checks, the
 * receipt's Ed25519 signature and the sockets, and a round's reveals are spread over the cores.
 *
 * Message in (RevealTask), message out (RevealReply): the phrase and the envelope's content key
 * are transferred, not copied, and the main thread owns (and wipes) them. A failed check comes back as its error code and message.
 */
import type { KeyObject } from "node:crypto";
import { parentPort, workerData } from "node:worker_threads";
import { osRandom } from "../crypto/random.js";
import { publicKeyFromRaw } from "../crypto/signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { MessageOf } from "../protocol/messages.js";
import { openReveal } from "./contribution-check.js";

export interface RevealTask {
  id: number;
  contributorId: string;
  /**
   * The contributor's enrolled Ed25519 key, raw (32 bytes): cloning a KeyObject into a thread
   * costs more than its bytes, and the thread keeps the keys it imported (publicKeyFromRaw).
   */
  identity: Uint8Array;
  serverFingerprint: string;
  setHash: Uint8Array;
  commitment: Uint8Array;
  reveal: MessageOf<"reveal">;
}

export type RevealReply =
  | { id: number; phrase: Uint8Array; contentKey: Uint8Array }
  | { id: number; error: { code: string; message: string } };

export interface RevealWorkerData {
  privateKey: KeyObject;
}

const { privateKey } = workerData as RevealWorkerData;
const port = parentPort!;

port.on("message", (task: RevealTask) => {
  try {
    const opened = openReveal(
      task.reveal,
      task.contributorId,
      publicKeyFromRaw(task.identity),
      { setHash: task.setHash, commitment: task.commitment },
      { fingerprint: task.serverFingerprint, privateKey, random: osRandom },
    );
    // Buffers of their own (the decrypted bytes may share a pooled one), moved to the main thread.
    const phrase = new Uint8Array(opened.phrase);
    const contentKey = new Uint8Array(opened.contentKey);
    opened.phrase.fill(0);
    opened.contentKey.fill(0);
    const reply: RevealReply = { id: task.id, phrase, contentKey };
    port.postMessage(reply, [phrase.buffer, contentKey.buffer]);
  } catch (error) {
    const known = error instanceof DkeygenError;
    const reply: RevealReply = {
      id: task.id,
      error: {
        code: known ? error.code : ErrorCodes.OPERATIONAL,
        message: known ? error.message : "The reveal could not be checked.",
      },
    };
    port.postMessage(reply);
  }
});
