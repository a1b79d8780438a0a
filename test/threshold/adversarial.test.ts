/**
 * The DKG participant (src/threshold/) against a malicious coordinator and malicious
 * participants: every attack ends in a DkgFault naming the party the evidence proves at fault
 * (or E_WRONG_PHASE for misuse), and never in a key.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import fc from "fast-check";
import { generateIdentity, signMessage } from "../../src/crypto/signature.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import {
  checkPackage,
  DkgFault,
  type DkgParticipant,
  judgeComplaint,
  type ShareEvidence,
  toNoble,
} from "../../src/threshold/dkg.js";
import { type RecoveryData, recoverShare } from "../../src/threshold/recovery.js";
import { SUITE_NAMES, type SuiteName, suiteOf } from "../../src/threshold/suites.js";
import {
  confirmSignedData,
  publicPackageHash,
  type Round1Package,
  type SealedShare,
} from "../../src/threshold/transcript.js";
import {
  type AdversarialRun,
  type AdversarialSession,
  adversarialSession,
  b64,
  b64u,
  equivocatingPackage,
  freshParticipant,
  hex,
  type Outcome,
  openSealed,
  perturbShare,
  recipientPairwiseKey,
  resign,
  runAdversarial,
  sealAndSign,
  senderPairwiseKey,
} from "../helpers/dkg-adversary.js";

type Culprit = number | "coordinator";

function assertFault(error: unknown, culprit: Culprit, kind: string, what = ""): DkgFault {
  assert.ok(error instanceof DkgFault, `${what}: expected a DkgFault, got ${String(error)}`);
  assert.equal(error.code, ErrorCodes.ROUND_ABORTED, what);
  assert.equal(error.culpritIndex, culprit, `${what}: culprit (${error.message})`);
  assert.equal(error.kind, kind, `${what}: kind (${error.message})`);
  return error;
}

function assertOutcome(o: Outcome, stage: Outcome["stage"], culprit: Culprit, kind: string) {
  assert.equal(o.stage, stage, `participant ${o.index}: stage (${String(o.error)})`);
  assert.equal(o.share, undefined);
  return assertFault(o.error, culprit, kind, `participant ${o.index}`);
}

/** No participant came out of the run with a key. */
function assertNoKey(run: AdversarialRun) {
  for (const o of run.outcomes) {
    assert.equal(o.share, undefined, `participant ${o.index} finished`);
    assert.notEqual(o.stage, "done");
  }
}

function wrongPhase(f: () => unknown, what: string) {
  assert.throws(
    f,
    (e: unknown) => e instanceof DkeygenError && e.code === ErrorCodes.WRONG_PHASE,
    what,
  );
}

function flip(bytes: Uint8Array, at = bytes.length >> 1): Uint8Array {
  const copy = bytes.slice();
  copy[at]! ^= 0x01;
  return copy;
}

/** Every participant except `skip` is shown `replace(packages)`. */
function showOthers(skip: number, replace: (p: Round1Package[]) => Round1Package[]) {
  return (packages: Round1Package[], to: number) => (to === skip ? packages : replace(packages));
}

function replaceAt(packages: Round1Package[], pkg: Round1Package): Round1Package[] {
  return packages.map((p) => (p.index === pkg.index ? pkg : p));
}

const message = new TextEncoder().encode("adversarial");

/** t shares of a finished key sign a message that verifies under the group key. */
function assertSigns(
  suite: SuiteName,
  shares: { identifier: string; signingShare: Uint8Array }[],
  t: number,
  n: number,
  groupKey: Uint8Array,
) {
  const { frost } = suiteOf(suite);
  const secret = frost.combineSecret(shares, { min: t, max: n });
  assert.ok(frost.verify(frost.sign(message, secret), message, groupKey));
}

const signerShares = (run: AdversarialRun) =>
  run.outcomes.map((o) => ({
    identifier: o.share!.identifiers[o.index - 1]!,
    signingShare: o.share!.signingShare,
  }));

// --- bad proof of knowledge ------------------------------------------------------------------

for (const suite of SUITE_NAMES) {
  test(`${suite}: a re-signed package with another session's proof names its sender ("proof")`, () => {
    const s = adversarialSession(suite, 2, 3);
    const other = adversarialSession(suite, 2, 3, s.keys); // same participants, new nonce
    const honest = s.participants[1]!.round1;
    const bad = resign(s, { ...honest, proof: other.participants[1]!.round1.proof });
    const run = runAdversarial(s, { round1: showOthers(2, (p) => replaceAt(p, bad)) });
    assertOutcome(run.outcomes[0]!, "round2", 2, "proof");
    assertOutcome(run.outcomes[2]!, "round2", 2, "proof");
    assertNoKey(run);
  });

  test(`${suite}: a re-signed package with a flipped proof byte names its sender ("proof")`, () => {
    // A byte of the commitment R (t = 3), a byte of the response z (t = 2).
    for (const [at, t] of [
      [5, 3],
      [suiteOf(suite).signatureBytes - 2, 2],
    ] as const) {
      const s = adversarialSession(suite, t, 3);
      const honest = s.participants[2]!.round1;
      const bad = resign(s, { ...honest, proof: flip(honest.proof, at) });
      const run = runAdversarial(s, { round1: showOthers(3, (p) => replaceAt(p, bad)) });
      for (const i of [0, 1]) assertOutcome(run.outcomes[i]!, "round2", 3, "proof");
      assertNoKey(run);
    }
  });

  test(`${suite}: a bad proof the sender did not sign is the coordinator's ("signature")`, () => {
    // The proof changed but the signature is the sender's original one (it does not cover the
    // change), a garbled signature, no signature.
    const s = adversarialSession(suite, 2, 3);
    const packages = s.participants.map((p) => p.round1);
    for (const make of [
      (p: Round1Package) => ({ ...p, proof: flip(p.proof) }),
      (p: Round1Package) => ({ ...p, signature: flip(p.signature) }),
      (p: Round1Package) => ({ ...p, signature: new Uint8Array(0) }),
    ]) {
      const victim = freshParticipant(s, 1);
      const shown = replaceAt(replaceAt(packages, victim.round1), make(packages[1]!));
      assert.throws(
        () => victim.round2(shown),
        (e) => !!assertFault(e, "coordinator", "signature"),
      );
    }
  });
}

// --- bad share, complaints ---------------------------------------------------------------------

/** Participant `from` seals a share that fails its commitment to `to`, with the right key, signed. */
function badShareRun(s: AdversarialSession, from: number, to: number) {
  let bad: SealedShare | undefined;
  const run = runAdversarial(s, {}, (sealed) =>
    sealed.map((x) => {
      if (x.from !== from || x.to !== to) return x;
      const share = perturbShare(s.params.suite, openSealed(s, x));
      bad = sealAndSign(s, from, to, share, senderPairwiseKey(s, from, to));
      return bad;
    }),
  );
  return { run, bad: bad! };
}

for (const suite of SUITE_NAMES) {
  test(`${suite}: a signed share that fails its commitment names its sender, with evidence the judge upholds`, () => {
    const s = adversarialSession(suite, 2, 3);
    const { run, bad } = badShareRun(s, 2, 1);
    const fault = assertOutcome(run.outcomes[0]!, "round3", 2, "share");
    const evidence = fault.evidence as ShareEvidence;
    assert.equal(evidence.from, 2);
    assert.equal(evidence.to, 1);
    assert.equal(hex(evidence.key), hex(recipientPairwiseKey(s, 2, 1)));
    assert.deepEqual(judgeComplaint(s.params, run.packages, bad, evidence.key), {
      verdict: "sender",
    });
    // 1 never confirmed: the others are left without a certificate (its slot names it).
    assertOutcome(run.outcomes[1]!, "finish", 1, "certificate");
    assertOutcome(run.outcomes[2]!, "finish", 1, "certificate");
    assertNoKey(run);
  });

  test(`${suite}: a false complaint is the accuser's; a wrong key, or a share or package the sender never signed, proves nothing`, () => {
    const s = adversarialSession(suite, 2, 3);
    const run = runAdversarial(s);
    const honest = run.sealed.find((x) => x.from === 3 && x.to === 1)!;
    const key = recipientPairwiseKey(s, 3, 1);
    assert.deepEqual(judgeComplaint(s.params, run.packages, honest, key), { verdict: "accuser" });
    for (const wrong of [
      new Uint8Array(randomBytes(32)),
      recipientPairwiseKey(s, 2, 1),
      recipientPairwiseKey(s, 3, 2),
    ]) {
      assert.deepEqual(judgeComplaint(s.params, run.packages, honest, wrong), {
        verdict: "unproven",
      });
    }
    // An accuser (1) that fabricates "3's" ciphertext under a key of its choosing, with a share
    // that fails 3's commitment, cannot frame 3: 3 never signed that ciphertext.
    const framingKey = new Uint8Array(randomBytes(32));
    const fake = perturbShare(suite, openSealed(s, honest));
    const fabricated = sealAndSign(s, 3, 1, fake, framingKey);
    const forged: SealedShare = {
      ...fabricated,
      signature: signMessage(s.keys[0]!.privateKey, new Uint8Array(0)),
    };
    assert.notEqual(judgeComplaint(s.params, run.packages, forged, framingKey).verdict, "sender");
    // Nor with the honest share judged against a commitment 3 never signed.
    const other = s.participants[1]!.round1;
    const swapped = run.packages.map((p) =>
      p.index === 3 ? { ...p, commitment: other.commitment } : p,
    );
    assert.notEqual(judgeComplaint(s.params, swapped, honest, key).verdict, "sender");
    for (const o of run.outcomes) assert.equal(o.stage, "done");
  });
}

// --- equivocation --------------------------------------------------------------------------------

for (const suite of SUITE_NAMES) {
  test(`${suite}: an equivocating participant with consistent shares: round 3 passes, finish() fails for all`, () => {
    // 1 shows package A (its honest one) to 2 and package B to 3, seals each a share consistent
    // with what it saw, and signs a confirmation of each view.
    const s = adversarialSession(suite, 2, 3);
    const p1 = s.participants[0]!;
    const A = p1.round1;
    const { pkg: B, secret } = equivocatingPackage(s, 1);
    assert.notEqual(hex(A.commitment[0]!), hex(B.commitment[0]!));
    // Both are signed by 1: either one, on its own, passes every check a recipient makes.
    checkPackage(s.params, p1.sessionId, A, "sender");
    checkPackage(s.params, p1.sessionId, B, "sender");
    const sharesB = p1.suite.frost.DKG.round2(
      secret,
      s.participants.slice(1).map((p) => toNoble(p1.identifiers, p.round1)),
    );
    const packages = s.participants.map((p) => p.round1);
    const viewB = replaceAt(packages, B);
    const sealed = s.participants
      .flatMap((p) => p.round2(p.index === 3 ? viewB : packages))
      .map((x) =>
        x.from === 1 && x.to === 3
          ? sealAndSign(
              s,
              1,
              3,
              sharesB[p1.identifiers[2]!]!.signingShare,
              senderPairwiseKey(s, 1, 3),
            )
          : x,
      );
    const conf = s.participants.map((p) => p.round3(sealed.filter((x) => x.to === p.index)));
    // Round 3 passes everywhere, but 2 and 3 derived different transcripts and different keys.
    assert.equal(hex(conf[0]!.public.commitments[0]!), hex(conf[1]!.public.commitments[0]!));
    assert.notEqual(hex(conf[1]!.public.commitments[0]!), hex(conf[2]!.public.commitments[0]!));
    assert.notEqual(hex(conf[1]!.transcript), hex(conf[2]!.transcript));
    // 1 signs 3's view too, so each view's certificate has a valid signature of 1's.
    const oneForB = signMessage(
      s.keys[0]!.privateKey,
      confirmSignedData(
        p1.sessionId,
        conf[2]!.transcript,
        publicPackageHash(conf[2]!.public, p1.identifiers),
      ),
    );
    const certA = conf.map((c) => c.signature);
    const certB = [oneForB, certA[1]!, certA[2]!];
    // Nobody finishes: 2 cannot get 3's signature over its view, nor 3 2's. finish() names the
    // first participant whose confirmation is not over the finisher's own view, which is an
    // honest participant here: the equivocator (1) is not identified by finish().
    assert.throws(
      () => s.participants[1]!.finish(certA),
      (e) => !!assertFault(e, 3, "certificate", "2"),
    );
    assert.throws(
      () => s.participants[2]!.finish(certB),
      (e) => !!assertFault(e, 2, "certificate", "3"),
    );
    assert.throws(
      () => p1.finish(certA),
      (e) => !!assertFault(e, 3, "certificate", "1"),
    );
    for (const p of s.participants) {
      for (const cert of [certA, certB]) wrongPhase(() => p.finish(cert), `${p.index} again`);
    }
  });

  test(`${suite}: an equivocating participant with one polynomial's shares is named by the recipient of the other view`, () => {
    const s = adversarialSession(suite, 2, 3);
    const { pkg: B } = equivocatingPackage(s, 1);
    const run = runAdversarial(s, {
      round1: (packages, to) => (to === 3 ? replaceAt(packages, B) : packages),
    });
    const fault = assertOutcome(run.outcomes[2]!, "round3", 1, "share");
    const shown = replaceAt(run.packages, B);
    const bad = run.sealed.find((x) => x.from === 1 && x.to === 3)!;
    assert.deepEqual(judgeComplaint(s.params, shown, bad, fault.evidence!.key), {
      verdict: "sender",
    });
    assertOutcome(run.outcomes[0]!, "finish", 3, "certificate");
    assertOutcome(run.outcomes[1]!, "finish", 3, "certificate");
    assertNoKey(run);
  });

  test(`${suite}: a participant shown another package of its own (signed by itself) blames the coordinator`, () => {
    const s = adversarialSession(suite, 2, 3);
    const { pkg: B } = equivocatingPackage(s, 1);
    const run = runAdversarial(s, { round1: (packages) => replaceAt(packages, B) });
    assertOutcome(run.outcomes[0]!, "round2", "coordinator", "equivocation");
    assertNoKey(run);
  });
}

// --- the coordinator: tampering, dropping, reordering ------------------------------------------

for (const suite of SUITE_NAMES) {
  test(`${suite}: the coordinator altering, dropping, duplicating or moving round-1 packages is named`, () => {
    const s = adversarialSession(suite, 2, 3);
    const variants: [string, (p: Round1Package[]) => Round1Package[], string][] = [
      ["one dropped", (p) => p.filter((x) => x.index !== 3), "missing"],
      ["none", () => [], "missing"],
      ["one extra", (p) => [...p, p[2]!], "missing"],
      ["an index twice", (p) => [p[0]!, p[1]!, { ...p[1]! }], "missing"],
      [
        "two indices swapped",
        (p) => [p[0]!, { ...p[1]!, index: 3 }, { ...p[2]!, index: 2 }],
        "signature",
      ],
      ["an index out of range", (p) => [p[0]!, p[1]!, { ...p[2]!, index: 4 }], "missing"],
      [
        "a commitment byte flipped",
        (p) =>
          replaceAt(p, {
            ...p[1]!,
            commitment: [flip(p[1]!.commitment[0]!), p[1]!.commitment[1]!],
          }),
        "signature",
      ],
      [
        "an encryption key replaced",
        (p) => replaceAt(p, { ...p[2]!, encryptionKey: p[1]!.encryptionKey }),
        "signature",
      ],
    ];
    for (const [what, change, kind] of variants) {
      const victim = freshParticipant(s, 1);
      const packages = [victim.round1, ...s.participants.slice(1).map((p) => p.round1)];
      assert.throws(
        () => victim.round2(change(packages)),
        (e) => !!assertFault(e, "coordinator", kind, what),
      );
      wrongPhase(() => victim.round2(packages), `${what}: the session is over`);
    }
  });

  test(`${suite}: the coordinator altering, dropping, duplicating or moving sealed shares is named`, () => {
    const s = adversarialSession(suite, 2, 4);
    const packages = s.participants.map((p) => p.round1);
    const sealed = s.participants.flatMap((p) => p.round2(packages));
    const to = (i: number) => sealed.filter((x) => x.to === i);
    const variants: [number, string, SealedShare[], string][] = [
      [
        1,
        "a ciphertext byte flipped",
        to(1).map((x) => (x.from === 2 ? { ...x, ciphertext: flip(x.ciphertext) } : x)),
        "signature",
      ],
      [
        2,
        "a signature byte flipped",
        to(2).map((x) => (x.from === 3 ? { ...x, signature: flip(x.signature) } : x)),
        "signature",
      ],
      [3, "one dropped", to(3).filter((x) => x.from !== 1), "missing"],
      [4, "one twice, one dropped", [...to(4).filter((x) => x.from !== 2), to(4)[0]!], "missing"],
    ];
    for (const [victim, what, incoming, kind] of variants) {
      assert.throws(
        () => s.participants[victim - 1]!.round3(incoming),
        (e) => !!assertFault(e, "coordinator", kind, what),
      );
    }
    for (const p of s.participants) wrongPhase(() => p.round3(to(p.index)), `${p.index} is over`);
  });
}

test(`secp256k1-tr: shares re-addressed or re-attributed by the coordinator are named`, () => {
  const s = adversarialSession("secp256k1-tr", 2, 4);
  const packages = s.participants.map((p) => p.round1);
  const sealed = s.participants.flatMap((p) => p.round2(packages));
  const to = (i: number) => sealed.filter((x) => x.to === i);
  const share = (from: number, t: number) => sealed.find((x) => x.from === from && x.to === t)!;
  const variants: [number, string, SealedShare[], string][] = [
    // 2's share for 3 given to 1 in place of 2's share for 1 (its own addressing)...
    [
      1,
      "another's share, as addressed",
      to(1).map((x) => (x.from === 2 ? share(2, 3) : x)),
      "missing",
    ],
    // ...or readdressed to 1 (2 signed it for 3).
    [
      2,
      "another's share, readdressed",
      to(2).map((x) => (x.from === 1 ? { ...share(1, 3), to: 2 } : x)),
      "signature",
    ],
    // 4's share for 3 passed off as 1's.
    [
      3,
      "a share re-attributed",
      to(3).map((x) => (x.from === 1 ? { ...share(4, 3), from: 1 } : x)),
      "signature",
    ],
    // Two shares' senders swapped (each still one per sender).
    [
      4,
      "two senders swapped",
      to(4).map((x) => (x.from === 1 ? { ...x, from: 2 } : x.from === 2 ? { ...x, from: 1 } : x)),
      "signature",
    ],
  ];
  for (const [victim, what, incoming, kind] of variants) {
    assert.throws(
      () => s.participants[victim - 1]!.round3(incoming),
      (e) => !!assertFault(e, "coordinator", kind, what),
    );
  }
});

test("secp256k1-tr: messages relayed in another order are no fault; the key signs", () => {
  for (const suite of ["secp256k1-tr"] as const) {
    const s = adversarialSession(suite, 2, 3);
    const run = runAdversarial(s, {
      round1: (p) => p.slice().reverse(),
      round2: (x) => x.slice().reverse(),
    });
    for (const o of run.outcomes) assert.equal(o.stage, "done", String(o.error));
    const key = run.outcomes[0]!.share!.public.commitments[0]!;
    for (const o of run.outcomes) assert.equal(hex(o.share!.public.commitments[0]!), hex(key));
    assertSigns(suite, signerShares(run).slice(1), 2, 3, key);
  }
});

// --- replay from another session ---------------------------------------------------------------

for (const suite of ["secp256k1-tr", "ed25519"] as const) {
  test(`${suite}: round-1 packages, sealed shares and confirmations replayed from another session are refused`, () => {
    const a = adversarialSession(suite, 2, 3);
    const b = adversarialSession(suite, 2, 3, a.keys); // the same participants, a new nonce
    const pa = a.participants.map((p) => p.round1);
    const pb = b.participants.map((p) => p.round1);
    // One package, or all but the victim's own, from session b.
    for (const shown of [replaceAt(pa, pb[1]!), [pa[0]!, pb[1]!, pb[2]!]]) {
      const victim = freshParticipant(a, 1);
      assert.throws(
        () => victim.round2(replaceAt(shown, victim.round1)),
        (e) => !!assertFault(e, "coordinator", "signature", "round 1"),
      );
    }
    // A sealed share from session b, in place of a's: its signature is bound to b's session id.
    const run = runAdversarial(b);
    const replayed = run.sealed.find((x) => x.from === 2 && x.to === 1)!;
    const sealed = a.participants.flatMap((p) => p.round2(pa));
    const to = (i: number) => sealed.filter((x) => x.to === i);
    assert.throws(
      () => a.participants[0]!.round3(to(1).map((x) => (x.from === 2 ? replayed : x))),
      (e) => !!assertFault(e, "coordinator", "signature", "round 2"),
    );
    // A confirmation from session b (same signer) in a's certificate names its signer.
    const conf = a.participants.slice(1).map((p) => p.round3(to(p.index)));
    const certB = run.outcomes.map((o) => o.share!.certificate).at(0)!;
    assert.throws(
      () => a.participants[1]!.finish([certB[0]!, conf[0]!.signature, conf[1]!.signature]),
      (e) => !!assertFault(e, 1, "certificate", "confirmation"),
    );
    assert.throws(
      () => a.participants[2]!.finish([new Uint8Array(0), conf[0]!.signature, certB[2]!]),
      (e) => !!assertFault(e, 1, "certificate", "confirmation"),
    );
  });
}

// --- the certificate, and steps out of order ----------------------------------------------------

/** A session run to the end of round 3: the participants await their certificate. */
function toRound3(s: AdversarialSession) {
  const packages = s.participants.map((p) => p.round1);
  const sealed = s.participants.flatMap((p) => p.round2(packages));
  const incoming = (i: number) => sealed.filter((x) => x.to === i);
  const conf = s.participants.map((p) => p.round3(incoming(p.index)));
  return { packages, sealed, incoming, conf, certificate: conf.map((c) => c.signature) };
}

for (const suite of SUITE_NAMES) {
  test(`${suite}: a certificate with a signature missing or replaced names that index; nobody finishes`, () => {
    const s = adversarialSession(suite, 2, 3);
    const { certificate: cert } = toRound3(s);
    const p = s.participants;
    // Shorter: which one is missing is unknown, the coordinator sent it.
    assert.throws(
      () => p[0]!.finish(cert.slice(0, 2)),
      (e) => !!assertFault(e, "coordinator", "certificate", "short"),
    );
    // Slot 2 empty; slot 3 holding 2's signature.
    assert.throws(
      () => p[1]!.finish([cert[0]!, new Uint8Array(0), cert[2]!]),
      (e) => !!assertFault(e, 2, "certificate", "empty slot"),
    );
    assert.throws(
      () => p[2]!.finish([cert[0]!, cert[1]!, cert[1]!]),
      (e) => !!assertFault(e, 3, "certificate", "another's signature"),
    );
    // Each has aborted: not even the true certificate helps now.
    for (const q of p) wrongPhase(() => q.finish(cert), `${q.index} after a bad certificate`);
  });
}

test("steps out of order are E_WRONG_PHASE and leave the session as it was", () => {
  const s = adversarialSession("secp256k1-tr", 2, 3);
  const packages = s.participants.map((p) => p.round1);
  const p1 = s.participants[0]!;
  wrongPhase(() => p1.round3([]), "round3 before round2");
  wrongPhase(() => p1.finish([]), "finish before round3");
  const sealed = s.participants.flatMap((p) => p.round2(packages));
  wrongPhase(() => p1.round2(packages), "round2 twice");
  const incoming = (i: number) => sealed.filter((x) => x.to === i);
  const conf = s.participants.map((p) => p.round3(incoming(p.index)));
  wrongPhase(() => p1.round3(incoming(1)), "round3 twice");
  wrongPhase(() => p1.round2(packages), "round2 after round3");
  const shares = s.participants.map((p) => p.finish(conf.map((c) => c.signature)));
  for (const p of s.participants) {
    wrongPhase(() => p.finish(conf.map((c) => c.signature)), "finish twice");
    wrongPhase(() => p.round3(incoming(p.index)), "round3 after finish");
  }
  assert.equal(hex(shares[0]!.groupPublicKey), hex(shares[2]!.groupPublicKey));
});

// --- recovery --------------------------------------------------------------------------------------

for (const suite of SUITE_NAMES) {
  test(`${suite}: recoverShare rebuilds each finished share from the public data and the identity key alone`, () => {
    const s = adversarialSession(suite, 2, 3);
    const run = runAdversarial(s);
    const finished = run.outcomes.map((o) => o.share!);
    const data: RecoveryData = {
      params: s.params,
      packages: run.packages,
      shares: run.sealed,
      certificate: finished[0]!.certificate,
    };
    for (const share of finished) {
      const i = share.index;
      const again = recoverShare(data, i, s.keys[i - 1]!.privateKey);
      assert.equal(hex(again.signingShare), hex(share.signingShare), `share ${i}`);
      assert.equal(hex(again.groupPublicKey), hex(share.groupPublicKey));
      assert.equal(hex(again.transcript), hex(share.transcript));
      assert.deepEqual(again.public, share.public);
    }
    // Another identity key (a participant's, or a stranger's) cannot recover share 1.
    for (const key of [s.keys[1]!.privateKey, generateIdentity().privateKey]) {
      assert.throws(
        () => recoverShare(data, 1, key),
        (e) => e instanceof DkeygenError && e.code === ErrorCodes.INVALID_INPUT,
      );
    }
    // Tampered public data.
    const share21 = run.sealed.findIndex((x) => x.from === 2 && x.to === 1);
    // (A package re-signed by its sender fails noble's proof check: an Error, no share.)
    const tampered: [string, RecoveryData, Culprit | "any", string][] = [
      [
        "a package",
        {
          ...data,
          packages: replaceAt(data.packages, {
            ...data.packages[1]!,
            proof: flip(data.packages[1]!.proof),
          }),
        },
        "coordinator",
        "signature",
      ],
      [
        "a package re-signed by its sender",
        {
          ...data,
          packages: replaceAt(
            data.packages,
            resign(s, { ...data.packages[1]!, proof: flip(data.packages[1]!.proof) }),
          ),
        },
        "any",
        "any",
      ],
      [
        "a share",
        {
          ...data,
          shares: data.shares.map((x, k) =>
            k === share21 ? { ...x, ciphertext: flip(x.ciphertext) } : x,
          ),
        },
        "coordinator",
        "signature",
      ],
      [
        "a share missing",
        { ...data, shares: data.shares.filter((_, k) => k !== share21) },
        "coordinator",
        "missing",
      ],
      [
        "the certificate",
        {
          ...data,
          certificate: [data.certificate[0]!, flip(data.certificate[1]!), data.certificate[2]!],
        },
        2,
        "certificate",
      ],
    ];
    for (const [what, bad, culprit, kind] of tampered) {
      assert.throws(
        () => recoverShare(bad, 1, s.keys[0]!.privateKey),
        (e) => (culprit === "any" ? e instanceof Error : !!assertFault(e, culprit, kind, what)),
        what,
      );
    }
  });
}

// --- secrets -------------------------------------------------------------------------------------

test("after abort() a participant cannot go on, at any step", () => {
  const s = adversarialSession("secp256k1-tr", 2, 3);
  const packages = s.participants.map((p) => p.round1);
  const early = freshParticipant(s, 1);
  early.abort();
  wrongPhase(() => early.round2(replaceAt(packages, early.round1)), "round2 after abort");
  const sealed = s.participants.flatMap((p) => p.round2(packages));
  const incoming = (i: number) => sealed.filter((x) => x.to === i);
  const [p1, p2, p3] = s.participants as [DkgParticipant, DkgParticipant, DkgParticipant];
  p1.abort();
  wrongPhase(() => p1.round3(incoming(1)), "round3 after abort");
  const c2 = p2.round3(incoming(2));
  const c3 = p3.round3(incoming(3));
  p2.abort();
  wrongPhase(
    () => p2.finish([new Uint8Array(0), c2.signature, c3.signature]),
    "finish after abort",
  );
  // p1 never confirmed, so p3 cannot finish either.
  assert.throws(
    () => p3.finish([new Uint8Array(0), c2.signature, c3.signature]),
    (e) => !!assertFault(e, 1, "certificate"),
  );
});

/** Every encoding of `secret` a careless message might carry. */
function encodings(secret: Uint8Array): string[] {
  const h = hex(secret);
  return [h, h.toUpperCase(), b64u(secret), b64(secret).replace(/=+$/, "")];
}

function assertHoldsNone(fault: DkgFault, secrets: Uint8Array[], what: string) {
  const texts = [
    fault.message,
    JSON.stringify(fault),
    JSON.stringify(fault.toJSON()),
    String(fault.stack),
  ];
  for (const secret of secrets) {
    for (const enc of encodings(secret)) {
      for (const text of texts) assert.ok(!text.includes(enc), `${what}: ${fault.message}`);
    }
  }
}

for (const suite of ["secp256k1-tr"] as const) {
  test(`${suite}: a fault's message and JSON hold no share, signing share or pairwise key`, () => {
    // A share complaint: its evidence holds a pairwise key, which must stay out of the text.
    const s = adversarialSession(suite, 2, 3);
    const { run } = badShareRun(s, 2, 1);
    const pairs = run.sealed.map((x) => [x.from, x.to] as const);
    const secrets = [
      ...pairs.map(([f, t]) => senderPairwiseKey(s, f, t)),
      ...run.sealed.map((x) => openSealed(s, x)),
    ];
    const faults = run.outcomes.map((o) => o.error as DkgFault);
    assert.ok(faults.every((f) => f instanceof DkgFault));
    assert.ok(faults[0]!.evidence !== undefined);
    assert.equal(JSON.stringify(faults[0]).includes("evidence"), false);
    for (const f of faults) assertHoldsNone(f, secrets, "complaint run");
    // A certificate fault after round 3, when every participant holds its signing share.
    const s2 = adversarialSession(suite, 2, 3);
    const r = toRound3(s2);
    const bad = [r.certificate[0]!, flip(r.certificate[1]!), r.certificate[2]!];
    const certFaults = s2.participants.map((p) => {
      let fault: unknown;
      try {
        p.finish(bad);
      } catch (e) {
        fault = e;
      }
      return assertFault(fault, 2, "certificate");
    });
    const data: RecoveryData = {
      params: s2.params,
      packages: r.packages,
      shares: r.sealed,
      certificate: r.certificate,
    };
    const signing = s2.keys.map((k, i) => recoverShare(data, i + 1, k.privateKey).signingShare);
    for (const f of certFaults) assertHoldsNone(f, signing, "certificate fault");
  });
}

// --- property: honest runs -----------------------------------------------------------------------

test("property: an honest (t, n) DKG gives everyone one group key, and any t shares sign for it", () => {
  fc.assert(
    fc.property(
      fc
        .record({
          n: fc.integer({ min: 2, max: 5 }),
          t: fc.integer({ min: 2, max: 5 }),
          suite: fc.constantFrom(...SUITE_NAMES),
          pick: fc.array(fc.nat(), { minLength: 5, maxLength: 5 }),
        })
        .filter(({ t, n }) => t <= n),
      ({ t, n, suite, pick }) => {
        const run = runAdversarial(adversarialSession(suite, t, n));
        for (const o of run.outcomes) assert.equal(o.stage, "done", String(o.error));
        const key = run.outcomes[0]!.share!.public.commitments[0]!;
        for (const o of run.outcomes) {
          assert.equal(hex(o.share!.public.commitments[0]!), hex(key));
          assert.equal(hex(o.share!.groupPublicKey), hex(run.outcomes[0]!.share!.groupPublicKey));
        }
        // A pseudo-random t-subset of the n shares.
        const all = signerShares(run);
        const chosen: typeof all = [];
        for (const k of pick) {
          if (chosen.length === t || all.length === 0) break;
          chosen.push(all.splice(k % all.length, 1)[0]!);
        }
        while (chosen.length < t) chosen.push(all.shift()!);
        assertSigns(suite, chosen, t, n, key);
      },
    ),
    { numRuns: 6 },
  );
});
