/**
 * One holder in a share refresh (refresh.ts; docs/PROTOCOL.md §16.7), as a pure state machine:
 *
 *   deal      a dealer's fresh sharing of its share, its commitment signed, one sub-share sealed
 *             (share-box.ts) to every holder — itself included, for recovery — and signed
 *   confirm   the t deals checked (each signed by its dealer, dealing the dealer's own share),
 *             the sub-shares sent to this holder opened and checked against their dealers'
 *             commitments, combined into the new share and public package; the holder signs
 *             the refresh transcript and the new package's hash (its part of the certificate)
 *   finish    the certificate: all n confirmations. Only then does the new share replace the old.
 */
import type { KeyObject } from "node:crypto";
import type { FrostPublic } from "@noble/curves/abstract/frost.js";
import { publicKeyFromRaw, signMessage, verifySignature } from "../crypto/signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { type Confirmation, checkCertificate, DkgFault } from "./dkg.js";
import {
  checkDeal,
  checkDealers,
  combineRefresh,
  deal,
  dealSignedData,
  type RefreshSessionParams,
  refreshSessionIdOf,
  refreshTranscript,
  subShareMatches,
} from "./refresh.js";
import {
  encryptionKeyPair,
  ephemeralKeyPair,
  identitySeed,
  openShare,
  pairwiseKey,
  sealShare,
} from "./share-box.js";
import {
  confirmSignedData,
  publicPackageHash,
  type SealedShare,
  shareSignedData,
} from "./transcript.js";

/** A dealer's signed commitment to its fresh sharing. */
export interface DealPackage {
  index: number;
  commitment: Uint8Array[];
  ephemeralKey: Uint8Array;
  signature: Uint8Array;
}

export interface RefreshInit {
  params: RefreshSessionParams;
  index: number;
  identityKey: KeyObject;
  identifiers: string[];
  /** Every holder's static X25519 key (share-box.ts), index order. */
  encryptionKeys: Uint8Array[];
  /** The key's current public package. */
  oldPublic: FrostPublic;
  /** This holder's current signing share: needed only by a dealer (secret). */
  signingShare?: Uint8Array;
  random: (bytes: number) => Uint8Array;
}

export interface RefreshedShare {
  sessionId: Uint8Array;
  index: number;
  public: FrostPublic;
  signingShare: Uint8Array;
  transcript: Uint8Array;
  certificate: Uint8Array[];
}

export class RefreshParticipant {
  readonly params: RefreshSessionParams;
  readonly index: number;
  readonly sessionId: Uint8Array;
  readonly #init: RefreshInit;
  readonly #encryptionSecret: Uint8Array;
  #result: Omit<RefreshedShare, "certificate"> | undefined;
  #step: 1 | 2 | 3 = 1;

  constructor(init: RefreshInit) {
    const { params } = init;
    checkDealers(params.t, params.n, params.dealers);
    if (params.identities.length !== params.n || init.encryptionKeys.length !== params.n) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, "A refresh lists n holders.");
    }
    this.params = params;
    this.index = init.index;
    this.sessionId = refreshSessionIdOf(params);
    this.#init = init;
    const seed = identitySeed(init.identityKey);
    const pair = encryptionKeyPair(seed);
    seed.fill(0);
    if (!Buffer.from(pair.public).equals(Buffer.from(init.encryptionKeys[init.index - 1]!))) {
      throw new DkeygenError(ErrorCodes.INVALID_INPUT, "This identity key is not this holder's.");
    }
    this.#encryptionSecret = pair.secret;
  }

  get isDealer(): boolean {
    return this.params.dealers.includes(this.index);
  }

  /** A dealer's deal: its signed package and the n sealed, signed sub-shares. */
  deal(): { package: DealPackage; shares: SealedShare[] } {
    const { params } = this;
    const { identifiers, oldPublic, signingShare } = this.#init;
    if (!this.isDealer || signingShare === undefined) {
      throw new DkeygenError(
        ErrorCodes.WRONG_PHASE,
        "This holder is not a dealer of this refresh.",
      );
    }
    const me = this.index;
    const verifyingShare = oldPublic.verifyingShares[identifiers[me - 1]!]!;
    // The polynomial's t − 1 coefficients (48 bytes each), then the ephemeral key, from `random`.
    const dealt = deal(
      params.suite,
      params.t,
      params.n,
      identifiers,
      signingShare,
      verifyingShare,
      this.#init.random,
    );
    const ephemeral = ephemeralKeyPair(this.#init.random(32));
    const pkg = {
      index: me,
      commitment: dealt.commitment,
      ephemeralKey: ephemeral.public,
      signature: signMessage(
        this.#init.identityKey,
        dealSignedData(this.sessionId, me, ephemeral.public, dealt.commitment),
      ),
    };
    const shares = dealt.subShares.map((sub, j) => {
      const to = j + 1;
      const recipient = this.#init.encryptionKeys[j]!;
      const key = pairwiseKey(
        ephemeral.secret,
        recipient,
        this.sessionId,
        ephemeral.public,
        recipient,
        me,
        to,
      );
      const ciphertext = sealShare(key, sub, this.sessionId, me, to);
      key.fill(0);
      sub.fill(0);
      return {
        from: me,
        to,
        ciphertext,
        signature: signMessage(
          this.#init.identityKey,
          shareSignedData(this.sessionId, me, to, ciphertext),
        ),
      };
    });
    ephemeral.secret.fill(0);
    return { package: pkg, shares };
  }

  /** Checks the t deals and this holder's sub-shares; returns its confirmation of the new package. */
  confirm(deals: DealPackage[], incoming: SealedShare[]): Confirmation {
    if (this.#step !== 1)
      throw new DkeygenError(ErrorCodes.WRONG_PHASE, "This refresh step is not expected now.");
    this.#step = 2;
    const { params } = this;
    const { identifiers, oldPublic } = this.#init;
    const me = this.index;
    const sorted = [...deals].sort((a, b) => a.index - b.index);
    if (sorted.length !== params.t || sorted.some((d, k) => d.index !== params.dealers[k])) {
      throw new DkgFault(
        "coordinator",
        "missing",
        "The relayed deals are not one from each dealer.",
      );
    }
    for (const d of sorted) {
      const identity = publicKeyFromRaw(params.identities[d.index - 1]!);
      const data = dealSignedData(this.sessionId, d.index, d.ephemeralKey, d.commitment);
      if (!verifySignature(identity, data, d.signature)) {
        throw new DkgFault(
          "coordinator",
          "signature",
          `Dealer ${d.index}'s deal is not signed by it.`,
        );
      }
      if (
        !checkDeal(
          params.suite,
          params.t,
          d.commitment,
          oldPublic.verifyingShares[identifiers[d.index - 1]!]!,
        )
      ) {
        throw new DkgFault(d.index, "commitment", `Dealer ${d.index} did not deal its own share.`);
      }
    }
    const mine = [...incoming].sort((a, b) => a.from - b.from);
    if (
      mine.length !== params.t ||
      mine.some((s, k) => s.from !== params.dealers[k] || s.to !== me)
    ) {
      throw new DkgFault(
        "coordinator",
        "missing",
        "The relayed sub-shares are not one from each dealer.",
      );
    }
    const myKey = this.#init.encryptionKeys[me - 1]!;
    const subShares: Uint8Array[] = [];
    try {
      mine.forEach((s, k) => {
        const dealer = sorted[k]!;
        const identity = publicKeyFromRaw(params.identities[s.from - 1]!);
        if (
          !verifySignature(
            identity,
            shareSignedData(this.sessionId, s.from, s.to, s.ciphertext),
            s.signature,
          )
        ) {
          throw new DkgFault(
            "coordinator",
            "signature",
            `The sub-share from dealer ${s.from} is not signed by it.`,
          );
        }
        const key = pairwiseKey(
          this.#encryptionSecret,
          dealer.ephemeralKey,
          this.sessionId,
          dealer.ephemeralKey,
          myKey,
          s.from,
          me,
        );
        const sub = openShare(key, s.ciphertext, this.sessionId, s.from, me);
        const evidence = { from: s.from, to: me, key };
        if (sub === undefined || sub.length !== 32) {
          throw new DkgFault(
            s.from,
            "share",
            `The sub-share from dealer ${s.from} does not open.`,
            evidence,
          );
        }
        if (
          !subShareMatches(
            params.suite,
            params.t,
            params.n,
            identifiers[me - 1]!,
            sub,
            dealer.commitment,
          )
        ) {
          sub.fill(0);
          throw new DkgFault(
            s.from,
            "share",
            `The sub-share from dealer ${s.from} does not match its commitment.`,
            evidence,
          );
        }
        key.fill(0);
        subShares.push(sub);
      });
      const combined = combineRefresh(
        params.suite,
        params.t,
        params.n,
        identifiers,
        params.dealers,
        sorted.map((d) => d.commitment),
        subShares,
        me,
        oldPublic,
      );
      const transcript = refreshTranscript(this.sessionId, sorted);
      this.#result = {
        sessionId: this.sessionId,
        index: me,
        public: combined.public,
        signingShare: combined.signingShare,
        transcript,
      };
      this.#step = 2;
      const publicHash = publicPackageHash(combined.public, identifiers);
      return {
        transcript,
        public: combined.public,
        signature: signMessage(
          this.#init.identityKey,
          confirmSignedData(this.sessionId, transcript, publicHash),
        ),
      };
    } finally {
      for (const s of subShares) s.fill(0);
    }
  }

  /** The certificate: all n confirmations of the same transcript and new package. */
  finish(certificate: Uint8Array[]): RefreshedShare {
    const result = this.#result;
    if (this.#step !== 2 || result === undefined) {
      throw new DkeygenError(ErrorCodes.WRONG_PHASE, "This refresh step is not expected now.");
    }
    this.#step = 3;
    try {
      checkCertificate(
        this.params,
        this.sessionId,
        result.transcript,
        publicPackageHash(result.public, this.#init.identifiers),
        certificate,
      );
    } catch (error) {
      this.abort();
      throw error;
    }
    this.#result = undefined;
    return { ...result, certificate };
  }

  abort(): void {
    this.#result?.signingShare.fill(0);
    this.#result = undefined;
    this.#encryptionSecret.fill(0);
    this.#step = 3;
  }
}
