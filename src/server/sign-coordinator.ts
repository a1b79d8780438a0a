/**
 * FROST signing (RFC 9591 §5) coordinated by the server (docs/PROTOCOL.md §16.6): for a stored
 * threshold key it picks t of the holders that are online, asks them with a signed
 * `sign.request`, gathers their nonce commitments, sends the commitment list, checks every
 * signature share with noble's verifyShare, aggregates, and verifies the signature the way the
 * suite's outside world does. A holder that does not answer in time, refuses, or sends a share
 * that fails its check is named and left out, and the attempt restarts with another t of the
 * rest (ROAST-style), so signing succeeds while any t honest holders respond.
 */
import type { FrostPublic, NonceCommitments } from "@noble/curves/abstract/frost.js";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { serverSign } from "../crypto/server-signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { MessageOf } from "../protocol/messages.js";
import { signRequestSignedData } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import type { KeyRecord } from "../store/types.js";
import {
  aggregateSignature,
  verifySignatureShare,
  verifyThresholdSignature,
} from "../threshold/signing.js";
import type { SuiteName } from "../threshold/suites.js";
import type { Peer, ServerContext } from "./server-context.js";
import { THRESHOLD_PURPOSE } from "./threshold-record.js";

/** How long each signing attempt waits for a phase's answers by default. */
export const DEFAULT_SIGN_TIMEOUT_MS = 10_000;

export interface SignResult {
  signature: Uint8Array;
  /** Contributor ids of the holders whose shares made the signature. */
  signers: string[];
  /** Holders left out along the way, and why. */
  excluded: { contributorId: string; reason: string }[];
}

interface StoredKey {
  suite: SuiteName;
  t: number;
  n: number;
  pub: FrostPublic;
  verifyKey: Uint8Array;
  holders: { contributorId: string; index: number; identifier: string }[];
}

interface Attempt {
  readonly signId: string;
  readonly signers: StoredKey["holders"];
  readonly peers: Map<string, Peer>;
  readonly commitments: Map<number, NonceCommitments>;
  readonly shares: Map<number, Uint8Array>;
  phase: "commit" | "share";
  readonly refused: Map<number, string>;
  wake: () => void;
}

export class SignCoordinator {
  readonly #ctx: ServerContext;
  readonly #attempts = new Map<string, Attempt>();

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
  }

  /** Signs `message` with threshold key `record` for `requester` (its owner). */
  async sign(record: KeyRecord, message: Uint8Array, requester: string): Promise<SignResult> {
    const key = storedKey(record);
    if ((record.owner ?? "@admin") !== requester) {
      throw new DkeygenError(ErrorCodes.FORBIDDEN, `Key ${record.id} belongs to another owner.`);
    }
    const excluded: SignResult["excluded"] = [];
    const left = new Set<string>();
    for (;;) {
      const online = key.holders.filter(
        (h) => !left.has(h.contributorId) && this.#ctx.contributors.has(h.contributorId),
      );
      if (online.length < key.t) {
        throw new DkeygenError(
          ErrorCodes.QUORUM_NOT_MET,
          `Key ${record.id} needs ${key.t} of its ${key.n} holders; ${online.length} are online and have not failed` +
            (excluded.length === 0
              ? "."
              : ` (left out: ${excluded.map((e) => `${e.contributorId} ${e.reason}`).join("; ")}).`),
        );
      }
      const signers = online.slice(0, key.t);
      const failed = await this.#attempt(record, key, signers, message, requester);
      if ("signature" in failed) {
        return {
          signature: failed.signature,
          signers: signers.map((s) => s.contributorId),
          excluded,
        };
      }
      for (const f of failed.culprits) {
        left.add(f.contributorId);
        excluded.push(f);
        this.#ctx.c.logger.warn(
          { keyId: record.id, contributorId: f.contributorId },
          `signer left out: ${f.reason}`,
        );
      }
    }
  }

  async #attempt(
    record: KeyRecord,
    key: StoredKey,
    signers: StoredKey["holders"],
    message: Uint8Array,
    requester: string,
  ): Promise<{ signature: Uint8Array } | { culprits: SignResult["excluded"] }> {
    const ctx = this.#ctx;
    const timeoutMs = ctx.config.signTimeoutMs ?? DEFAULT_SIGN_TIMEOUT_MS;
    const signIdBytes = ctx.c.random(16);
    const signId = toBase64url(signIdBytes);
    const attempt: Attempt = {
      signId,
      signers,
      peers: new Map(signers.map((s) => [s.contributorId, ctx.contributors.get(s.contributorId)!])),
      commitments: new Map(),
      shares: new Map(),
      refused: new Map(),
      phase: "commit",
      wake: () => {},
    };
    this.#attempts.set(signId, attempt);
    try {
      const deadline = new Date(ctx.c.clock() + 2 * timeoutMs).toISOString();
      const indices = signers.map((s) => s.index);
      const signature = serverSign(
        ctx.c.identity.privateKey,
        signRequestSignedData(
          ctx.fingerprint,
          signIdBytes,
          record.id,
          message,
          requester,
          indices,
          deadline,
        ),
      );
      for (const s of signers) {
        ctx.send(attempt.peers.get(s.contributorId)!, {
          type: "sign.request",
          v: PROTOCOL_VERSION,
          signId,
          keyId: record.id,
          message: toBase64url(message),
          requester,
          signers: indices,
          deadline,
          signature: toBase64url(signature),
        });
      }
      await this.#gather(attempt, (a) => a.commitments.size, timeoutMs);
      const silent = (got: Map<number, unknown>, what: string) =>
        signers
          .filter((s) => !got.has(s.index))
          .map((s) => ({
            contributorId: s.contributorId,
            reason: attempt.refused.has(s.index)
              ? `refused (${attempt.refused.get(s.index)})`
              : what,
          }));
      if (attempt.commitments.size < signers.length)
        return { culprits: silent(attempt.commitments, "sent no commitment in time") };
      attempt.phase = "share";
      const list = signers.map((s) => attempt.commitments.get(s.index)!);
      for (const s of signers) {
        ctx.send(attempt.peers.get(s.contributorId)!, {
          type: "sign.package",
          v: PROTOCOL_VERSION,
          signId,
          commitments: signers.map((x) => ({
            index: x.index,
            hiding: toBase64url(attempt.commitments.get(x.index)!.hiding),
            binding: toBase64url(attempt.commitments.get(x.index)!.binding),
          })),
        });
      }
      await this.#gather(attempt, (a) => a.shares.size, timeoutMs);
      const bad = signers.filter((s) => {
        const share = attempt.shares.get(s.index);
        return (
          share !== undefined &&
          !verifySignatureShare(key.suite, key.pub, list, message, s.identifier, share)
        );
      });
      const culprits = [
        ...silent(attempt.shares, "sent no signature share in time"),
        ...bad.map((s) => ({
          contributorId: s.contributorId,
          reason: "sent an invalid signature share",
        })),
      ];
      if (culprits.length > 0) return { culprits };
      const shares = Object.fromEntries(
        signers.map((s) => [s.identifier, attempt.shares.get(s.index)!]),
      );
      const sig = aggregateSignature(key.suite, key.pub, list, message, shares);
      if (!verifyThresholdSignature(key.suite, sig, message, key.verifyKey)) {
        throw new DkeygenError(ErrorCodes.OPERATIONAL, "The aggregated signature does not verify.");
      }
      ctx.c.logger.info({ keyId: record.id, signers: signers.length }, "threshold signature made");
      return { signature: sig };
    } finally {
      this.#attempts.delete(signId);
    }
  }

  /** Waits until `count` reaches the attempt's size, a refusal, or the timeout. */
  #gather(attempt: Attempt, count: (a: Attempt) => number, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      attempt.wake = () => {
        if (count(attempt) + attempt.refused.size >= attempt.signers.length) {
          clearTimeout(timer);
          resolve();
        }
      };
      attempt.wake();
    });
  }

  commit(peer: Peer, msg: MessageOf<"sign.commit">): void {
    const { attempt, signer } = this.#signer(peer, msg.signId, "commit");
    if (attempt.commitments.has(signer.index)) {
      throw new DkeygenError(
        ErrorCodes.DUPLICATE_CONTRIBUTION,
        "This signer's commitments are in already.",
      );
    }
    attempt.commitments.set(signer.index, {
      identifier: signer.identifier,
      hiding: new Uint8Array(fromBase64url(msg.hiding, "hiding")),
      binding: new Uint8Array(fromBase64url(msg.binding, "binding")),
    });
    attempt.wake();
  }

  share(peer: Peer, msg: MessageOf<"sign.share">): void {
    const { attempt, signer } = this.#signer(peer, msg.signId, "share");
    if (attempt.shares.has(signer.index)) {
      throw new DkeygenError(
        ErrorCodes.DUPLICATE_CONTRIBUTION,
        "This signer's share is in already.",
      );
    }
    attempt.shares.set(signer.index, new Uint8Array(fromBase64url(msg.share, "share", 32)));
    attempt.wake();
  }

  refuse(peer: Peer, msg: MessageOf<"sign.refuse">): void {
    const { attempt, signer } = this.#signer(peer, msg.signId, undefined);
    attempt.refused.set(signer.index, msg.reason);
    attempt.wake();
  }

  /** A signer that disconnects fails its attempt at once instead of at the timeout. */
  participantLeft(contributorId: string): void {
    for (const attempt of this.#attempts.values()) {
      const signer = attempt.signers.find((s) => s.contributorId === contributorId);
      if (signer === undefined) continue;
      attempt.refused.set(signer.index, "disconnected");
      attempt.wake();
    }
  }

  #signer(peer: Peer, signId: string, phase: Attempt["phase"] | undefined) {
    const attempt = this.#attempts.get(signId);
    const signer = attempt?.signers.find((s) => attempt.peers.get(s.contributorId) === peer);
    if (!attempt || !signer) {
      throw new DkeygenError(
        ErrorCodes.WRONG_ROUND,
        "No signing attempt of this id includes this contributor.",
      );
    }
    if (phase !== undefined && attempt.phase !== phase) {
      throw new DkeygenError(
        ErrorCodes.WRONG_PHASE,
        `This signing attempt is not in its ${phase} phase.`,
      );
    }
    return { attempt, signer };
  }
}

/** The public key package and holders of a stored threshold key record. */
function storedKey(record: KeyRecord): StoredKey {
  if (record.purpose !== THRESHOLD_PURPOSE) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, `Record ${record.id} is not a threshold key.`);
  }
  const p = record.public as {
    suite: SuiteName;
    t: number;
    n: number;
    groupPublicKey: string;
    outputKey?: string;
    commitments: string[];
    holders: { contributorId: string; index: number; identifier: string; verifyingShare: string }[];
  };
  return {
    suite: p.suite,
    t: p.t,
    n: p.n,
    pub: {
      signers: { min: p.t, max: p.n },
      commitments: p.commitments.map((c) => new Uint8Array(fromBase64url(c, "commitments"))),
      verifyingShares: Object.fromEntries(
        p.holders.map((h) => [
          h.identifier,
          new Uint8Array(fromBase64url(h.verifyingShare, "verifyingShare")),
        ]),
      ),
    },
    verifyKey: Buffer.from(p.outputKey ?? p.groupPublicKey, "hex"),
    holders: p.holders.map((h) => ({
      contributorId: h.contributorId,
      index: h.index,
      identifier: h.identifier,
    })),
  };
}
