/**
 * The checks a DKG participant, its coordinator and its auditors run on what they are shown
 * (docs/PROTOCOL.md §16.3): packages as relayed, proofs of knowledge located one by one when noble's
 * round 2 fails, shares opened and blamed, complaints judged from their evidence, certificates.
 */
import type { DKG_Round1 } from "@noble/curves/abstract/frost.js";
import { publicKeyFromRaw, verifySignature } from "../crypto/signature.js";
import { DkgFault } from "./dkg-fault.js";
import { openShare, pairwiseKey } from "./share-box.js";
import { suiteOf } from "./suites.js";
import {
  confirmSignedData,
  type DkgSessionParams,
  identifiersOf,
  type Round1Package,
  round1SignedData,
  type SealedShare,
  sessionIdOf,
  shareSignedData,
} from "./transcript.js";

export function toNoble(identifiers: string[], p: Round1Package): DKG_Round1 {
  return {
    identifier: identifiers[p.index - 1]!,
    commitment: p.commitment.map((c) => new Uint8Array(c)),
    proofOfKnowledge: new Uint8Array(p.proof),
  };
}

/**
 * Checks a full set of round-1 packages as relayed: one per index, each signed by its sender's
 * identity key (a bad signature: the coordinator relayed something the sender never signed),
 * with t well-formed commitments and usable encryption keys (else the sender signed garbage).
 * Returns them sorted by index.
 */
export function checkPackages(
  params: DkgSessionParams,
  sessionId: Uint8Array,
  packages: Round1Package[],
): Round1Package[] {
  if (packages.length !== params.n) {
    throw new DkgFault(
      "coordinator",
      "missing",
      `The coordinator relayed ${packages.length} of ${params.n} round-1 packages.`,
    );
  }
  const sorted = [...packages].sort((a, b) => a.index - b.index);
  sorted.forEach((p, i) => {
    if (p.index !== i + 1) {
      throw new DkgFault(
        "coordinator",
        "missing",
        "The relayed round-1 packages are not one per participant.",
      );
    }
  });
  for (const p of sorted) checkPackage(params, sessionId, p, "coordinator");
  return sorted;
}

/**
 * One round-1 package: its signature (a bad one is blamed on `signatureCulprit`: the coordinator
 * when relayed, the sender when received first-hand), then its form, blamed on its signer.
 */
export function checkPackage(
  params: DkgSessionParams,
  sessionId: Uint8Array,
  p: Round1Package,
  signatureCulprit: "coordinator" | "sender",
): void {
  const identity = params.identities[p.index - 1];
  if (identity === undefined)
    throw new DkgFault("coordinator", "missing", "A package names no participant.");
  if (!verifySignature(publicKeyFromRaw(identity), round1SignedData(sessionId, p), p.signature)) {
    const culprit = signatureCulprit === "coordinator" ? "coordinator" : p.index;
    throw new DkgFault(
      culprit,
      "signature",
      `Participant ${p.index}'s round-1 package is not signed by it.`,
    );
  }
  const suite = suiteOf(params.suite);
  if (p.commitment.length !== params.t || p.commitment.some((c) => c.length !== suite.pointBytes)) {
    throw new DkgFault(
      p.index,
      "commitment",
      `Participant ${p.index} committed to no polynomial of degree t - 1.`,
    );
  }
  if (p.proof.length !== suite.signatureBytes) {
    throw new DkgFault(
      p.index,
      "proof",
      `Participant ${p.index}'s proof of knowledge is malformed.`,
    );
  }
  if (p.encryptionKey.length !== 32 || p.ephemeralKey.length !== 32) {
    throw new DkgFault(
      p.index,
      "encryption-key",
      `Participant ${p.index}'s encryption keys are malformed.`,
    );
  }
}

/**
 * Which sender's proof of knowledge fails. noble checks proofs only inside round 2, over a full
 * set; each package is checked here on its own inside a throwaway (t, t) session whose other
 * t - 2 packages are known-good, so the first failure names its sender. Costs O(n·t) proof
 * checks; run only once round 2 has failed. Also checks the points noble would parse.
 */
export function findBadProof(
  params: DkgSessionParams,
  identifiers: string[],
  packages: Round1Package[],
): number {
  const { frost } = suiteOf(params.suite);
  const t = params.t;
  const signers = { min: t, max: t };
  const fillers = Array.from({ length: t - 1 }, (_, i) =>
    frost.DKG.round1(frost.Identifier.derive(`dkeygen/v1/dkg-filler/${i}`), signers),
  );
  try {
    for (const p of packages) {
      // A fresh copy of the probe each time: round 2 caches what it saw in its secret state.
      const probe = structuredClone(fillers[0]!.secret);
      const others = [toNoble(identifiers, p), ...fillers.slice(1).map((f) => f.public)];
      try {
        frost.DKG.round2(probe, others);
      } catch {
        return p.index;
      }
    }
  } finally {
    for (const f of fillers) frost.DKG.clean(f.secret);
  }
  throw new DkgFault("coordinator", "proof", "Round 2 failed but every proof of knowledge checks.");
}

/**
 * Opens the shares sent to participant `me`: one from each other index, signed by its sender
 * (else the coordinator altered or invented it) and decrypting (else the sender sealed garbage or
 * to another key — a complaint with the key as evidence). Whether each matches its sender's
 * commitment is noble's round 3 to check (it does, for every share); when it fails, blameShare
 * finds which one, so the check is not paid twice on the way that succeeds.
 */
export function openIncoming(
  params: DkgSessionParams,
  sessionId: Uint8Array,
  packages: Round1Package[],
  me: number,
  encryptionSecret: Uint8Array,
  incoming: SealedShare[],
): { from: number; share: Uint8Array }[] {
  const suite = suiteOf(params.suite);
  const expected = packages.filter((p) => p.index !== me);
  if (incoming.length !== expected.length) {
    throw new DkgFault(
      "coordinator",
      "missing",
      `The coordinator relayed ${incoming.length} of ${expected.length} shares.`,
    );
  }
  const mine = packages[me - 1]!;
  const sorted = [...incoming].sort((a, b) => a.from - b.from);
  const opened: { from: number; share: Uint8Array }[] = [];
  try {
    sorted.forEach((s, i) => {
      const sender = expected[i]!;
      if (s.from !== sender.index || s.to !== me) {
        throw new DkgFault(
          "coordinator",
          "missing",
          "The relayed shares are not one from each other participant.",
        );
      }
      const identity = publicKeyFromRaw(params.identities[s.from - 1]!);
      const signed = shareSignedData(sessionId, s.from, s.to, s.ciphertext);
      if (!verifySignature(identity, signed, s.signature)) {
        throw new DkgFault(
          "coordinator",
          "signature",
          `The share from participant ${s.from} is not signed by it.`,
        );
      }
      const key = shareKey(sessionId, sender, mine, me, encryptionSecret);
      const share = openShare(key, s.ciphertext, sessionId, s.from, me);
      if (share === undefined || share.length !== suite.scalarBytes) {
        share?.fill(0);
        throw new DkgFault(s.from, "share", `The share from participant ${s.from} does not open.`, {
          from: s.from,
          to: me,
          key,
        });
      }
      key.fill(0);
      opened.push({ from: s.from, share });
    });
    return opened;
  } catch (error) {
    for (const o of opened) o.share.fill(0);
    throw error;
  }
}

/** The key of the share `sender` sealed to participant `me` (share-box.ts), from me's side. */
function shareKey(
  sessionId: Uint8Array,
  sender: Round1Package,
  mine: Round1Package,
  me: number,
  encryptionSecret: Uint8Array,
): Uint8Array {
  return pairwiseKey(
    encryptionSecret,
    sender.ephemeralKey,
    sessionId,
    sender.ephemeralKey,
    mine.encryptionKey,
    sender.index,
    me,
  );
}

/**
 * After noble's round 3 refused the opened shares: the first whose sender's commitment it does
 * not match, blamed on that sender with the share's key as evidence (judgeComplaint re-checks it).
 */
export function blameShare(
  params: DkgSessionParams,
  sessionId: Uint8Array,
  identifiers: string[],
  packages: Round1Package[],
  me: number,
  encryptionSecret: Uint8Array,
  opened: { from: number; share: Uint8Array }[],
): DkgFault {
  for (const o of opened) {
    const sender = packages[o.from - 1]!;
    if (!shareMatchesCommitment(params, identifiers[me - 1]!, sender, o.share)) {
      const key = shareKey(sessionId, sender, packages[me - 1]!, me, encryptionSecret);
      return new DkgFault(
        o.from,
        "share",
        `The share from participant ${o.from} does not match its commitment.`,
        { from: o.from, to: me, key },
      );
    }
  }
  return new DkgFault("coordinator", "protocol", "Round 3 failed, yet every share checks.");
}

function shareMatchesCommitment(
  params: DkgSessionParams,
  identifier: string,
  sender: Round1Package,
  share: Uint8Array,
): boolean {
  try {
    suiteOf(params.suite).frost.validateSecret(
      { identifier, signingShare: share },
      {
        signers: { min: params.t, max: params.n },
        commitments: sender.commitment,
        verifyingShares: {},
      },
    );
    return true;
  } catch {
    return false;
  }
}

/**
 * The coordinator's (or anyone's) judgement of a share complaint from the evidence: the share's
 * key opens the sender's signed ciphertext to a share that fails the sender's commitment — the
 * sender is proven at fault; it opens to a good share — the accuser lied; it does not open —
 * unproven (the sender sealed to another key, or the accuser revealed a wrong key).
 */
export function judgeComplaint(
  params: DkgSessionParams,
  packages: Round1Package[],
  share: SealedShare,
  key: Uint8Array,
): { verdict: "sender" | "accuser" | "unproven" } {
  const sessionId = sessionIdOf(params);
  const identifiers = identifiersOf(params.suite, sessionId, params.n);
  const sender = packages.find((p) => p.index === share.from);
  if (!sender) return { verdict: "unproven" };
  // Only what the sender signed can prove it at fault: its round-1 package (the commitment) and
  // this ciphertext. Anything else may have been made by the accuser to frame it.
  const identity = params.identities[share.from - 1];
  if (
    identity === undefined ||
    !Number.isInteger(share.to) ||
    share.to < 1 ||
    share.to > params.n ||
    !verifySignature(
      publicKeyFromRaw(identity),
      round1SignedData(sessionId, sender),
      sender.signature,
    ) ||
    !verifySignature(
      publicKeyFromRaw(identity),
      shareSignedData(sessionId, share.from, share.to, share.ciphertext),
      share.signature,
    )
  ) {
    return { verdict: "unproven" };
  }
  const opened = openShare(key, share.ciphertext, sessionId, share.from, share.to);
  if (opened === undefined) return { verdict: "unproven" };
  const good =
    opened.length === suiteOf(params.suite).scalarBytes &&
    shareMatchesCommitment(params, identifiers[share.to - 1]!, sender, opened);
  opened.fill(0);
  return { verdict: good ? "accuser" : "sender" };
}

/** All n confirmations, each by its participant over the same transcript and group key. */
export function checkCertificate(
  params: Pick<DkgSessionParams, "n" | "identities">,
  sessionId: Uint8Array,
  transcript: Uint8Array,
  publicHash: Uint8Array,
  certificate: Uint8Array[],
): void {
  if (certificate.length !== params.n) {
    throw new DkgFault(
      "coordinator",
      "certificate",
      `The certificate has ${certificate.length} of ${params.n} signatures.`,
    );
  }
  const data = confirmSignedData(sessionId, transcript, publicHash);
  certificate.forEach((signature, i) => {
    if (!verifySignature(publicKeyFromRaw(params.identities[i]!), data, signature)) {
      throw new DkgFault(
        i + 1,
        "certificate",
        `Participant ${i + 1} did not confirm the same transcript and public key package.`,
      );
    }
  });
}
