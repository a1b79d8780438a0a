/**
 * A holder's part in FROST signing (docs/PROTOCOL.md §16.6). It signs only what its policy
 * allows: a `sign.request` signed by the pinned server, for a key it holds a share of, asked by
 * that key's owner (recorded at keygen), listing it among the signers, before the deadline. Its
 * nonces are fresh per attempt, kept in memory only, used once (noble zeroes them) and dropped
 * at the deadline. Every signature share it makes is logged, with the message's SHA-256, in
 * `<data dir>/threshold/signed.log`.
 */
import { createHash } from "node:crypto";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import type { NonceCommitments, Nonces } from "@noble/curves/abstract/frost.js";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { serverVerify } from "../crypto/server-signature.js";
import { describeError } from "../errors.js";
import type { Logger } from "../logging.js";
import { encodeMessage, type MessageOf } from "../protocol/messages.js";
import { signRequestSignedData } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import { publicFromJson } from "../threshold/codec.js";
import { commitNonces, signShare } from "../threshold/signing.js";
import type { Connection } from "../transport/types.js";
import type { ServerKey } from "./server-key.js";
import type { ShareFile, ShareStore } from "./share-store.js";

export type SignEvent = { type: "sign.shared"; signId: string; keyId: string };

interface Pending {
  file: ShareFile;
  message: Uint8Array;
  requester: string;
  signers: number[];
  nonces: Nonces;
  commitments: NonceCommitments;
  timer: NodeJS.Timeout;
}

export interface ContributorSignOptions {
  shares: ShareStore;
  logger: Logger;
  emit: (event: SignEvent) => void;
  clock?: () => number;
}

export class ContributorSign {
  readonly #o: ContributorSignOptions;
  readonly #pending = new Map<string, Pending>();

  constructor(options: ContributorSignOptions) {
    this.#o = options;
  }

  async request(
    connection: Connection,
    server: ServerKey,
    msg: MessageOf<"sign.request">,
  ): Promise<void> {
    const refuse = (reason: string, detail: string) => {
      this.#o.logger.warn({ signId: msg.signId, keyId: msg.keyId }, `refused to sign: ${detail}`);
      connection.send(
        encodeMessage({ type: "sign.refuse", v: PROTOCOL_VERSION, signId: msg.signId, reason }),
      );
    };
    const message = fromBase64url(msg.message, "message");
    const signed = signRequestSignedData(
      server.fingerprint,
      fromBase64url(msg.signId, "signId", 16),
      msg.keyId,
      message,
      msg.requester,
      msg.signers,
      msg.deadline,
    );
    if (!serverVerify(server.key, signed, fromBase64url(msg.signature, "signature"))) {
      this.#o.logger.error(
        { signId: msg.signId },
        "ignored a sign.request the server did not sign",
      );
      return;
    }
    const msLeft = Date.parse(msg.deadline) - (this.#o.clock ?? Date.now)();
    if (!(msLeft > 0)) return refuse("late", "the request is past its deadline");
    if (this.#pending.has(msg.signId)) return refuse("replay", "a second request with the same id");
    const file = await this.#o.shares.read(msg.keyId);
    if (file === undefined) return refuse("unknown-key", "no share of this key here");
    if (msg.requester !== file.owner)
      return refuse("not-owner", "the requester does not own the key");
    if (
      !msg.signers.includes(file.index) ||
      msg.signers.some((i, k) => k > 0 && i <= msg.signers[k - 1]!) ||
      msg.signers.length < file.t
    ) {
      return refuse(
        "bad-signers",
        "the signers are not t ascending holder indices including this one",
      );
    }
    const share = this.#o.shares.openShare(file);
    let round1: { nonces: Nonces; commitments: NonceCommitments };
    try {
      round1 = commitNonces({
        suite: file.suite,
        identifier: file.identifiers[file.index - 1]!,
        signingShare: share,
      });
    } finally {
      share.fill(0);
    }
    const timer = setTimeout(() => this.#drop(msg.signId), msLeft);
    timer.unref();
    this.#pending.set(msg.signId, {
      file,
      message,
      requester: msg.requester,
      signers: msg.signers,
      ...round1,
      timer,
    });
    connection.send(
      encodeMessage({
        type: "sign.commit",
        v: PROTOCOL_VERSION,
        signId: msg.signId,
        hiding: toBase64url(round1.commitments.hiding),
        binding: toBase64url(round1.commitments.binding),
      }),
    );
  }

  async package(connection: Connection, msg: MessageOf<"sign.package">): Promise<void> {
    const pending = this.#pending.get(msg.signId);
    if (pending === undefined) return;
    // One package per attempt: the nonces are gone after this, whatever happens.
    this.#drop(msg.signId, false);
    const { file } = pending;
    const indices = msg.commitments.map((c) => c.index);
    const mine = msg.commitments.find((c) => c.index === file.index);
    if (
      indices.length !== pending.signers.length ||
      indices.some((i, k) => i !== pending.signers[k]) ||
      mine === undefined ||
      mine.hiding !== toBase64url(pending.commitments.hiding) ||
      mine.binding !== toBase64url(pending.commitments.binding)
    ) {
      this.#wipe(pending);
      this.#o.logger.warn(
        { signId: msg.signId },
        "refused a sign.package that does not match the request",
      );
      connection.send(
        encodeMessage({
          type: "sign.refuse",
          v: PROTOCOL_VERSION,
          signId: msg.signId,
          reason: "bad-package",
        }),
      );
      return;
    }
    const commitments = msg.commitments.map((c) => ({
      identifier: file.identifiers[c.index - 1]!,
      hiding: new Uint8Array(fromBase64url(c.hiding, "hiding")),
      binding: new Uint8Array(fromBase64url(c.binding, "binding")),
    }));
    const share = this.#o.shares.openShare(file);
    let sigShare: Uint8Array;
    try {
      const pub = publicFromJson(file.public, file.identifiers, file.t, file.n);
      sigShare = signShare(
        { suite: file.suite, identifier: file.identifiers[file.index - 1]!, signingShare: share },
        pub,
        pending.nonces,
        commitments,
        pending.message,
      );
    } catch (error) {
      this.#wipe(pending);
      this.#o.logger.warn({ signId: msg.signId, err: describeError(error) }, "could not sign");
      connection.send(
        encodeMessage({
          type: "sign.refuse",
          v: PROTOCOL_VERSION,
          signId: msg.signId,
          reason: "bad-package",
        }),
      );
      return;
    } finally {
      share.fill(0);
    }
    const digest = createHash("sha256").update(pending.message).digest("hex");
    await appendFile(
      join(this.#o.shares.dir, "signed.log"),
      `${JSON.stringify({ at: new Date().toISOString(), keyId: file.keyId, signId: msg.signId, requester: pending.requester, messageSha256: digest })}\n`,
      { mode: 0o600 },
    );
    this.#o.logger.info(
      { keyId: file.keyId, signId: msg.signId, messageSha256: digest },
      "signature share sent",
    );
    connection.send(
      encodeMessage({
        type: "sign.share",
        v: PROTOCOL_VERSION,
        signId: msg.signId,
        share: toBase64url(sigShare),
      }),
    );
    this.#o.emit({ type: "sign.shared", signId: msg.signId, keyId: file.keyId });
  }

  #drop(signId: string, wipe = true): void {
    const pending = this.#pending.get(signId);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    this.#pending.delete(signId);
    if (wipe) this.#wipe(pending);
  }

  #wipe(pending: Pending): void {
    pending.nonces.hiding.fill(0);
    pending.nonces.binding.fill(0);
  }
}
