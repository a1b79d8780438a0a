/**
 * Published test vectors through dkeygen's threshold wrappers (test/vectors/frost/README.md,
 * test/vectors/bip86/README.md):
 *
 *   RFC 9591 / ZF signing vectors   signShare, verifySignatureShare, aggregateSignature,
 *                                   verifyThresholdSignature (src/threshold/signing.ts)
 *   ZF DKG vectors                  noble's DKG rounds fed as dkg.ts feeds them: checkPackages
 *                                   (shape rules), toNoble, findBadProof, groupKeyOf
 *   BIP 86 vectors                  bip86OutputKey, p2trAddress (src/threshold/taproot.ts)
 *
 * The ZF repair-share vectors are copied but not tested: @noble/curves 2.4 has no share repair.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { NonceCommitments } from "@noble/curves/abstract/frost.js";
import { schnorr } from "@noble/curves/secp256k1.js";
import { numberToBytesBE, numberToBytesLE } from "@noble/curves/utils.js";
import { generateIdentity, rawPublicKey, signMessage } from "../../src/crypto/signature.js";
import {
  checkPackage,
  checkPackages,
  DkgFault,
  findBadProof,
  groupKeyOf,
  toNoble,
} from "../../src/threshold/dkg.js";
import {
  aggregateSignature,
  commitNonces,
  signShare,
  verifySignatureShare,
  verifyThresholdSignature,
} from "../../src/threshold/signing.js";
import { SUITE_NAMES, type SuiteName, suiteOf } from "../../src/threshold/suites.js";
import { bip86OutputKey, p2trAddress, xOnly } from "../../src/threshold/taproot.js";
import {
  type DkgSessionParams,
  type Round1Package,
  round1SignedData,
  sessionIdOf,
} from "../../src/threshold/transcript.js";
import { readVector } from "../helpers/paths.js";

interface SigningVector {
  config: { MAX_PARTICIPANTS: string; MIN_PARTICIPANTS: string; NUM_PARTICIPANTS: string };
  inputs: {
    participant_list: number[];
    group_secret_key: string;
    verifying_key_key: string;
    message: string;
    share_polynomial_coefficients: string[];
    participant_shares: { identifier: number; participant_share: string }[];
  };
  round_one_outputs: {
    outputs: {
      identifier: number;
      hiding_nonce_randomness: string;
      binding_nonce_randomness: string;
      hiding_nonce: string;
      binding_nonce: string;
      hiding_nonce_commitment: string;
      binding_nonce_commitment: string;
    }[];
  };
  round_two_outputs: { outputs: { identifier: number; sig_share: string }[] };
  final_output: { sig: string };
}

interface DkgParticipantVector {
  identifier: number;
  signing_key: string;
  coefficient: string;
  vss_commitments: string[];
  proof_of_knowledge: string;
  /** The shares this participant received, by sender. */
  signing_shares: Record<string, string>;
  verifying_share: string;
  signing_share: string;
}

interface DkgVector {
  config: { MAX_PARTICIPANTS: number; MIN_PARTICIPANTS: number };
  inputs: { verifying_key: string } & Record<string, DkgParticipantVector | string>;
}

interface Bip86Vectors {
  network: "mainnet";
  vectors: {
    path: string;
    internal_key: string;
    output_key: string;
    scriptPubKey: string;
    address: string;
  }[];
}

const hex = (h: string): Uint8Array<ArrayBuffer> => Uint8Array.from(Buffer.from(h, "hex"));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function flipBit(bytes: Uint8Array, byte: number, bit = 0): Uint8Array<ArrayBuffer> {
  const out = Uint8Array.from(bytes);
  out[byte]! ^= 1 << bit;
  return out;
}

/**
 * An rng that makes noble draw the given scalars, in order. noble turns 48 rng bytes into a
 * scalar as (int(bytes) mod (n - 1)) + 1 (mapHashToField, in the field's byte order), so the
 * bytes of s - 1 give back s. Asked for more, it fails: a vector must not meet real randomness.
 */
function scalarRng(suite: SuiteName, scalars: string[]) {
  const Fn = suiteOf(suite).frost.utils.Fn;
  const queue = [...scalars];
  return (bytes = 48): Uint8Array<ArrayBuffer> => {
    const next = queue.shift();
    if (next === undefined || bytes !== 48) throw new Error(`unexpected rng call (${bytes} bytes)`);
    const s = Fn.fromBytes(hex(next)) - 1n;
    return Uint8Array.from(Fn.isLE ? numberToBytesLE(s, 48) : numberToBytesBE(s, 48));
  };
}

/** The key a suite's signatures verify under, from a vector's group key. */
function verificationKey(suite: SuiteName, groupKey: Uint8Array): Uint8Array {
  return suite === "secp256k1-tr" ? xOnly(groupKey) : groupKey;
}

// ---------------------------------------------------------------------------------------------
// RFC 9591 (Appendix E) / ZF signing vectors
// ---------------------------------------------------------------------------------------------

for (const suite of SUITE_NAMES) {
  const v = readVector<SigningVector>(`frost/frost-${suite}-vectors.json`);
  const { frost } = suiteOf(suite);
  const min = Number(v.config.MIN_PARTICIPANTS);
  const max = Number(v.config.MAX_PARTICIPANTS);
  const ids = Array.from({ length: max }, (_, i) => frost.Identifier.fromNumber(i + 1));
  const idOf = (n: number) => ids[n - 1]!;
  const message = hex(v.inputs.message);
  const groupKey = hex(v.inputs.verifying_key_key);
  const commitments: NonceCommitments[] = v.round_one_outputs.outputs.map((o) => ({
    identifier: idOf(o.identifier),
    hiding: hex(o.hiding_nonce_commitment),
    binding: hex(o.binding_nonce_commitment),
  }));
  const shareOf = (n: number) =>
    hex(v.inputs.participant_shares.find((p) => p.identifier === n)!.participant_share);
  const expectedSigShare = (n: number) =>
    v.round_two_outputs.outputs.find((o) => o.identifier === n)!.sig_share;

  /** The key's public package: the dealer's, rebuilt from the vector's secret and coefficients. */
  function dealerPublic() {
    const deal = frost.trustedDealer(
      { min, max },
      ids,
      hex(v.inputs.group_secret_key),
      scalarRng(suite, v.inputs.share_polynomial_coefficients),
    );
    return deal;
  }

  test(`${suite} signing vector: the dealer's polynomial gives the vector's group key and shares`, () => {
    assert.deepEqual([min, max, v.inputs.participant_list.length], [2, 3, 2]);
    const deal = dealerPublic();
    assert.equal(toHex(deal.public.commitments[0]!), v.inputs.verifying_key_key);
    for (const p of v.inputs.participant_shares) {
      assert.equal(
        toHex(deal.secretShares[idOf(p.identifier)]!.signingShare),
        p.participant_share,
        `share of participant ${p.identifier}`,
      );
    }
  });

  // commitNonces takes no rng, so the deterministic nonce_generate step is checked on noble's
  // commit itself, with the vector's randomness.
  test(`${suite} signing vector: nonce_generate from the vector's randomness gives its nonces and commitments (noble commit)`, () => {
    for (const o of v.round_one_outputs.outputs) {
      const randomness = [hex(o.hiding_nonce_randomness), hex(o.binding_nonce_randomness)];
      const { nonces, commitments: c } = frost.commit(
        { identifier: idOf(o.identifier), signingShare: shareOf(o.identifier) },
        (bytes = 32): Uint8Array<ArrayBuffer> => {
          const next = randomness.shift();
          if (next === undefined || next.length !== bytes) throw new Error("unexpected rng call");
          return next;
        },
      );
      assert.equal(toHex(nonces.hiding), o.hiding_nonce);
      assert.equal(toHex(nonces.binding), o.binding_nonce);
      assert.equal(toHex(c.hiding), o.hiding_nonce_commitment);
      assert.equal(toHex(c.binding), o.binding_nonce_commitment);
      assert.equal(c.identifier, idOf(o.identifier));
    }
  });

  test(`${suite} signing vector: signShare gives the vector's shares, verifySignatureShare accepts them and rejects any flipped bit`, () => {
    const pub = dealerPublic().public;
    for (const o of v.round_one_outputs.outputs) {
      const identifier = idOf(o.identifier);
      const sigShare = signShare(
        { suite, identifier, signingShare: shareOf(o.identifier) },
        pub,
        { hiding: hex(o.hiding_nonce), binding: hex(o.binding_nonce) },
        commitments,
        message,
      );
      const expected = expectedSigShare(o.identifier);
      assert.equal(toHex(sigShare), expected, `signature share of participant ${o.identifier}`);
      assert.equal(
        verifySignatureShare(suite, pub, commitments, message, identifier, hex(expected)),
        true,
      );
      for (let byte = 0; byte < sigShare.length; byte++) {
        assert.equal(
          verifySignatureShare(
            suite,
            pub,
            commitments,
            message,
            identifier,
            flipBit(hex(expected), byte),
          ),
          false,
          `share ${o.identifier} with byte ${byte} flipped`,
        );
      }
      const other = v.round_one_outputs.outputs.find((x) => x.identifier !== o.identifier)!;
      assert.equal(
        verifySignatureShare(suite, pub, commitments, message, idOf(other.identifier), sigShare),
        false,
        "a share checked as another signer's",
      );
    }
  });

  test(`${suite} signing vector: aggregateSignature gives the vector's signature and verifyThresholdSignature accepts it`, () => {
    const pub = dealerPublic().public;
    const shares: Record<string, Uint8Array> = {};
    for (const o of v.round_two_outputs.outputs) shares[idOf(o.identifier)] = hex(o.sig_share);
    const signature = aggregateSignature(suite, pub, commitments, message, shares);
    assert.equal(toHex(signature), v.final_output.sig);
    assert.equal(signature.length, suiteOf(suite).signatureBytes);
    const key = verificationKey(suite, groupKey);
    const sig = hex(v.final_output.sig);
    assert.equal(verifyThresholdSignature(suite, sig, message, key), true);
    assert.equal(
      verifyThresholdSignature(suite, flipBit(sig, sig.length - 1), message, key),
      false,
    );
    assert.equal(verifyThresholdSignature(suite, sig, flipBit(message, 0), key), false);
  });

  if (suite === "secp256k1-tr") {
    // ZF signs its secp256k1-tr vector with the untweaked trusted-dealer key: the signature is BIP
    // 340 under x(group key), not under its BIP 86 output key. dkeygen's keys come from the DKG,
    // which noble tweaks, so dkeygen verifies under the output key (see the DKG vector below).
    test("secp256k1-tr signing vector: the signature is BIP 340 under the untweaked x-only key, not its BIP 86 output key", () => {
      const sig = hex(v.final_output.sig);
      assert.equal(schnorr.verify(sig, message, xOnly(groupKey)), true);
      assert.equal(
        verifyThresholdSignature(suite, sig, message, bip86OutputKey(xOnly(groupKey))),
        false,
      );
    });
  }
}

// ---------------------------------------------------------------------------------------------
// ZF DKG vectors (Pedersen DKG with proofs of knowledge; not part of RFC 9591)
// ---------------------------------------------------------------------------------------------

for (const suite of SUITE_NAMES) {
  const d = readVector<DkgVector>(`frost/frost-${suite}-vectors_dkg.json`);
  const { frost } = suiteOf(suite);
  const t = d.config.MIN_PARTICIPANTS;
  const n = d.config.MAX_PARTICIPANTS;
  const ids = Array.from({ length: n }, (_, i) => frost.Identifier.fromNumber(i + 1));
  const indices = Array.from({ length: n }, (_, i) => i + 1);
  const participant = (i: number) => d.inputs[String(i)] as DkgParticipantVector;

  /**
   * The vector's round-1 broadcasts as dkeygen packages: its commitments and proofs, with
   * placeholder encryption keys, each signed by a throwaway identity of a session of our own.
   */
  function vectorSession() {
    const identities = indices.map(() => generateIdentity());
    const params: DkgSessionParams = {
      suite,
      t,
      n,
      serverFingerprint: "frost-vectors",
      nonce: new Uint8Array(32),
      identities: identities.map((k) => rawPublicKey(k.publicKey)),
    };
    const sessionId = sessionIdOf(params);
    const sign = (p: Omit<Round1Package, "signature">): Round1Package => ({
      ...p,
      signature: signMessage(identities[p.index - 1]!.privateKey, round1SignedData(sessionId, p)),
    });
    const packages = indices.map((i) =>
      sign({
        index: i,
        commitment: participant(i).vss_commitments.map(hex),
        proof: hex(participant(i).proof_of_knowledge),
        encryptionKey: new Uint8Array(32).fill(i),
        ephemeralKey: new Uint8Array(32).fill(16 + i),
      }),
    );
    return { params, sessionId, packages, sign };
  }

  /** Participant `me` through noble's three DKG rounds as dkg.ts drives them. */
  function runParticipant(me: number, packages: Round1Package[]) {
    const p = participant(me);
    // Polynomial: constant term = signing_key (given), degree-1 coefficient from the rng; the
    // last scalar is the nonce of our own proof of knowledge (not in the vectors).
    const { public: round1, secret } = frost.DKG.round1(
      ids[me - 1]!,
      { min: t, max: n },
      hex(p.signing_key),
      scalarRng(suite, [p.coefficient, "01".repeat(32)]),
    );
    const others = packages.filter((q) => q.index !== me).map((q) => toNoble(ids, q));
    const sent = frost.DKG.round2(secret, others);
    const received = indices
      .filter((j) => j !== me)
      .map((j) => ({ identifier: ids[j - 1]!, signingShare: hex(p.signing_shares[String(j)]!) }));
    const key = frost.DKG.round3(secret, others, received);
    return { round1, sent, key };
  }

  test(`${suite} DKG vector: the round-1 packages pass checkPackages (t commitments of pointBytes, a proof of signatureBytes)`, () => {
    const { params, sessionId, packages } = vectorSession();
    const sorted = checkPackages(params, sessionId, [...packages].reverse());
    assert.deepEqual(
      sorted.map((p) => p.index),
      indices,
    );
    const s = suiteOf(suite);
    for (const p of sorted) {
      assert.equal(p.commitment.length, t);
      for (const c of p.commitment) assert.equal(c.length, s.pointBytes);
      assert.equal(p.proof.length, s.signatureBytes);
      const noble = toNoble(ids, p);
      assert.equal(noble.identifier, ids[p.index - 1]);
      assert.deepEqual(noble.commitment.map(toHex), participant(p.index).vss_commitments);
      assert.equal(toHex(noble.proofOfKnowledge), participant(p.index).proof_of_knowledge);
    }
  });

  test(`${suite} DKG vector: checkPackage refuses a vector package cut by one byte (commitment or proof)`, () => {
    const { params, sessionId, packages, sign } = vectorSession();
    const p = packages[1]!;
    const shortPoint = sign({
      ...p,
      commitment: [p.commitment[0]!, p.commitment[1]!.subarray(1)],
    });
    assert.throws(
      () => checkPackage(params, sessionId, shortPoint, "sender"),
      (e: unknown) => e instanceof DkgFault && e.kind === "commitment" && e.culpritIndex === 2,
    );
    const shortProof = sign({ ...p, proof: p.proof.subarray(1) });
    assert.throws(
      () => checkPackage(params, sessionId, shortProof, "sender"),
      (e: unknown) => e instanceof DkgFault && e.kind === "proof" && e.culpritIndex === 2,
    );
  });

  test(`${suite} DKG vector: each participant's rounds give the vector's commitments, shares, verifying shares and group key`, () => {
    const { packages } = vectorSession();
    for (const me of indices) {
      const p = participant(me);
      const { round1, sent, key } = runParticipant(me, packages);
      assert.deepEqual(round1.commitment.map(toHex), p.vss_commitments, `commitment of ${me}`);
      for (const j of indices.filter((j) => j !== me)) {
        assert.equal(
          toHex(sent[ids[j - 1]!]!.signingShare),
          participant(j).signing_shares[String(me)],
          `share ${me} → ${j}`,
        );
      }
      assert.equal(toHex(key.secret.signingShare), p.signing_share, `signing share of ${me}`);
      assert.equal(key.secret.identifier, ids[me - 1]);
      for (const j of indices) {
        assert.equal(
          toHex(key.public.verifyingShares[ids[j - 1]!]!),
          participant(j).verifying_share,
          `verifying share of ${j} as seen by ${me}`,
        );
      }
      assert.equal(toHex(key.public.commitments[0]!), d.inputs.verifying_key);
    }
  });

  test(`${suite} DKG vector: groupKeyOf shows the vector's group key in the suite's encoding`, () => {
    const { packages } = vectorSession();
    const { key } = runParticipant(1, packages);
    const shown = groupKeyOf(suite, key.public, packages);
    if (suite === "secp256k1-tr") {
      // ZF (and noble) tweak DKG output with the empty merkle root: the vector's verifying_key is
      // the BIP 86 output key; the internal key is x(Σ constant terms) = x((Σ signing_key)·G).
      const Fn = frost.utils.Fn;
      let secret = Fn.ZERO;
      for (const i of indices)
        secret = Fn.add(secret, Fn.fromBytes(hex(participant(i).signing_key)));
      assert.equal(toHex(shown.groupPublicKey), toHex(schnorr.getPublicKey(Fn.toBytes(secret))));
      assert.equal(toHex(shown.outputKey!), toHex(xOnly(hex(d.inputs.verifying_key))));
      assert.equal(toHex(bip86OutputKey(shown.groupPublicKey)), toHex(shown.outputKey!));
    } else {
      assert.equal(toHex(shown.groupPublicKey), d.inputs.verifying_key);
      assert.equal(shown.outputKey, undefined);
    }
  });

  test(`${suite} DKG vector: a flipped bit in a proof of knowledge fails round 2, and findBadProof names its sender`, () => {
    const { params, packages, sign } = vectorSession();
    // The vector's own proofs pass one by one: findBadProof finds no culprit.
    assert.throws(
      () => findBadProof(params, ids, packages.slice(1)),
      (e: unknown) => e instanceof DkgFault && e.culpritIndex === "coordinator",
    );
    const bad = sign({ ...packages[1]!, proof: flipBit(packages[1]!.proof, 40) });
    const tampered = [packages[0]!, bad, packages[2]!];
    assert.throws(() => runParticipant(1, tampered));
    assert.equal(findBadProof(params, ids, [tampered[1]!, tampered[2]!]), 2);
    assert.equal(findBadProof(params, ids, [tampered[2]!, tampered[1]!]), 2);
  });

  test(`${suite} DKG vector: a received share with a flipped bit fails round 3`, () => {
    const { packages } = vectorSession();
    const p = participant(1);
    const { secret } = frost.DKG.round1(
      ids[0]!,
      { min: t, max: n },
      hex(p.signing_key),
      scalarRng(suite, [p.coefficient, "01".repeat(32)]),
    );
    const others = packages.slice(1).map((q) => toNoble(ids, q));
    frost.DKG.round2(secret, others);
    const received = [2, 3].map((j) => ({
      identifier: ids[j - 1]!,
      signingShare: hex(p.signing_shares[String(j)]!),
    }));
    received[0]!.signingShare = flipBit(received[0]!.signingShare, 31, 1);
    assert.throws(() => frost.DKG.round3(secret, others, received), /invalid secret share/);
  });

  test(`${suite} DKG vector: the vector's key signs through our wrappers, verifying under the key groupKeyOf shows`, () => {
    const { packages } = vectorSession();
    const keys = indices.map((me) => runParticipant(me, packages).key);
    const shown = groupKeyOf(suite, keys[0]!.public, packages);
    const verifyKey = shown.outputKey ?? shown.groupPublicKey;
    const message = new TextEncoder().encode("dkeygen FROST DKG vector");
    const signers = [keys[0]!, keys[2]!];
    const round1 = signers.map((k) =>
      commitNonces({ suite, identifier: k.secret.identifier, signingShare: k.secret.signingShare }),
    );
    const commitments = round1.map((r) => r.commitments);
    const shares: Record<string, Uint8Array> = {};
    signers.forEach((k, i) => {
      const share = { suite, identifier: k.secret.identifier, signingShare: k.secret.signingShare };
      const sigShare = signShare(share, k.public, round1[i]!.nonces, commitments, message);
      assert.equal(
        verifySignatureShare(suite, k.public, commitments, message, k.secret.identifier, sigShare),
        true,
      );
      shares[k.secret.identifier] = sigShare;
    });
    const signature = aggregateSignature(suite, keys[0]!.public, commitments, message, shares);
    assert.equal(verifyThresholdSignature(suite, signature, message, verifyKey), true);
    if (suite === "secp256k1-tr") {
      assert.equal(
        verifyThresholdSignature(suite, signature, message, shown.groupPublicKey),
        false,
      );
    }
  });
}

// ---------------------------------------------------------------------------------------------
// BIP 86
// ---------------------------------------------------------------------------------------------

test("BIP 86 vectors: bip86OutputKey and p2trAddress give the output key, scriptPubKey and address", () => {
  const { vectors, network } = readVector<Bip86Vectors>("bip86/vectors.json");
  assert.equal(vectors.length, 3);
  for (const v of vectors) {
    const output = bip86OutputKey(hex(v.internal_key));
    assert.equal(toHex(output), v.output_key, v.path);
    assert.equal(`5120${toHex(output)}`, v.scriptPubKey, v.path);
    assert.equal(p2trAddress(output, network), v.address, v.path);
    // A compressed encoding of the internal key is taken by its x coordinate (BIP 341 lift_x).
    for (const prefix of ["02", "03"]) {
      assert.equal(toHex(bip86OutputKey(hex(`${prefix}${v.internal_key}`))), v.output_key);
    }
  }
});
