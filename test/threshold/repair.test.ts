/**
 * Share repair (src/threshold/repair.ts, RTS of eprint 2017/1155 as ZcashFoundation/frost does it):
 * ZF's repair-share vectors for parts 2 and 3, a full 3-of-5 repair whose share signs, part 1's
 * sum, and every input the helpers and the participant refuse — at the exact boundaries.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isDkeygenError } from "../../src/errors.js";
import type { ThresholdShare } from "../../src/threshold/dkg.js";
import { verifyingShareOf } from "../../src/threshold/refresh.js";
import {
  combineSigmas,
  repairDeltas,
  repairShare,
  repairSigma,
} from "../../src/threshold/repair.js";
import {
  aggregateSignature,
  commitNonces,
  type SignerShare,
  signShare,
  verifyThresholdSignature,
} from "../../src/threshold/signing.js";
import { SUITE_NAMES, type SuiteName, suiteOf } from "../../src/threshold/suites.js";
import { localSession, runLocalDkg } from "../helpers/dkg-local.js";
import { readVector } from "../helpers/paths.js";

interface RepairVector {
  scalar_generation: Record<string, string>;
  sigma_generation: Record<string, string>;
}

function vector(suite: SuiteName): RepairVector {
  return readVector<RepairVector>(`frost/frost-${suite}-repair-share.json`);
}

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Refused with E_INVALID_INPUT and a message matching `message`. */
function refused(f: () => unknown, message: RegExp) {
  assert.throws(f, (e: unknown) => isDkeygenError(e, "E_INVALID_INPUT") && message.test(e.message));
}

const keys = new Map<SuiteName, ThresholdShare[]>();
/** One 3-of-5 DKG key per suite, shared by the tests below. */
function key(suite: SuiteName): ThresholdShare[] {
  let shares = keys.get(suite);
  if (shares === undefined) {
    shares = runLocalDkg(localSession(suite, 3, 5)).shares;
    keys.set(suite, shares);
  }
  return shares;
}

function signer(s: ThresholdShare): SignerShare {
  return { suite: s.suite, identifier: s.identifiers[s.index - 1]!, signingShare: s.signingShare };
}

/** Parts 1 and 2 among `helpers` (indices) for `participant` (index): the sigmas, helper order. */
function sigmasFor(shares: ThresholdShare[], helpers: number[], participant: number) {
  const { suite, identifiers, public: pub } = shares[0]!;
  const ids = helpers.map((h) => identifiers[h - 1]!);
  const deltas = helpers.map((h) =>
    repairDeltas(signer(shares[h - 1]!), pub, ids, identifiers[participant - 1]!),
  );
  return ids.map((id) =>
    repairSigma(
      suite,
      deltas.map((d) => d[id]!),
    ),
  );
}

function sign(signers: SignerShare[], pub: ThresholdShare["public"], message: Uint8Array) {
  const suite = signers[0]!.suite;
  const round1 = signers.map((s) => commitNonces(s));
  const commitments = round1.map((r) => r.commitments);
  const shares = Object.fromEntries(
    signers.map((s, i) => [
      s.identifier,
      signShare(s, pub, round1[i]!.nonces, commitments, message),
    ]),
  );
  return aggregateSignature(suite, pub, commitments, message, shares);
}

for (const suite of SUITE_NAMES) {
  const { Fn } = suiteOf(suite).frost.utils;

  test(`${suite}: ZF's part-2 vector — a sigma is the sum of the deltas received`, () => {
    const v = vector(suite).scalar_generation;
    const deltas = ["random_scalar_1", "random_scalar_2", "random_scalar_3"].map((k) => hex(v[k]!));
    assert.equal(hexOf(repairSigma(suite, deltas)), v.random_scalar_sum);
  });

  test(`${suite}: ZF's part-3 vector — the repaired share is the sum of the sigmas, checked against the key`, () => {
    const v = vector(suite).sigma_generation;
    const sigmas = ["sigma_1", "sigma_2", "sigma_3", "sigma_4"].map((k) => hex(v[k]!));
    assert.equal(hexOf(combineSigmas(suite, sigmas)), v.sigma_sum);
    // ZF's part 3 only sums; ours also wants the verifying share: a package listing sum·G for 2.
    const id = suiteOf(suite).frost.Identifier.fromNumber(2);
    const pub = {
      signers: { min: 3, max: 5 },
      commitments: [],
      verifyingShares: {
        [id]: new Uint8Array(verifyingShareOf(suite, Fn.fromBytes(hex(v.sigma_sum!)))),
      },
    };
    const repaired = repairShare(suite, id, sigmas, pub);
    assert.deepEqual(repaired, { suite, identifier: id, signingShare: hex(v.sigma_sum!) });
    refused(() => repairShare(suite, id, sigmas.slice(1), pub), /does not match/);
  });

  test(`${suite}: holder 2 of a 3-of-5 key, repaired by holders 1, 4 and 5 (exactly t), gets its share back and signs with 3 and 5`, () => {
    const shares = key(suite);
    const { identifiers, public: pub } = shares[0]!;
    const sigmas = sigmasFor(shares, [1, 4, 5], 2);
    const repaired = repairShare(suite, identifiers[1]!, sigmas, pub);
    assert.deepEqual(repaired, signer(shares[1]!));
    const message = new TextEncoder().encode("signed with a repaired share");
    const signature = sign([repaired, signer(shares[2]!), signer(shares[4]!)], pub, message);
    const verifyKey = shares[0]!.outputKey ?? shares[0]!.groupPublicKey;
    assert.ok(verifyThresholdSignature(suite, signature, message, verifyKey));
  });

  test(`${suite}: four helpers (more than t) repair as well`, () => {
    const shares = key(suite);
    const { identifiers, public: pub } = shares[0]!;
    const sigmas = sigmasFor(shares, [5, 3, 1, 4], 2);
    assert.deepEqual(repairShare(suite, identifiers[1]!, sigmas, pub), signer(shares[1]!));
  });

  test(`${suite}: a helper's deltas, one per helper, sum to ζ_i·s_i (ζ_i the Lagrange coefficient at the participant)`, () => {
    const shares = key(suite);
    const { identifiers, public: pub } = shares[0]!;
    const helpers = [1, 4, 5].map((i) => identifiers[i - 1]!);
    const x = (id: string) => Fn.fromBytes(hex(id));
    const xr = x(identifiers[1]!);
    for (const i of [1, 4, 5]) {
      const me = identifiers[i - 1]!;
      const deltas = repairDeltas(signer(shares[i - 1]!), pub, helpers, identifiers[1]!);
      assert.deepEqual(Object.keys(deltas).sort(), [...helpers].sort());
      let zeta = Fn.ONE;
      for (const j of helpers) {
        if (j !== me) zeta = Fn.div(Fn.mul(zeta, Fn.sub(xr, x(j))), Fn.sub(x(me), x(j)));
      }
      const sum = Object.values(deltas).reduce((a, d) => Fn.add(a, Fn.fromBytes(d)), Fn.ZERO);
      assert.equal(sum, Fn.mul(zeta, Fn.fromBytes(shares[i - 1]!.signingShare)));
    }
  });

  test(`${suite}: deltas come from the injected random source: all but the last helper's (by identifier) are its draws`, () => {
    const shares = key(suite);
    const { identifiers, public: pub } = shares[0]!;
    // Given in descending order, so the order the deltas are assigned in is the module's own.
    const ordered = [1, 4, 5]
      .map((i) => identifiers[i - 1]!)
      .sort((p, q) => (Fn.fromBytes(hex(p)) < Fn.fromBytes(hex(q)) ? -1 : 1));
    const helpers = [...ordered].reverse();
    let draws = 0;
    const random = (n = 32) => new Uint8Array(n).fill(++draws);
    const a = repairDeltas(signer(shares[0]!), pub, helpers, identifiers[1]!, random);
    draws = 0;
    const b = repairDeltas(signer(shares[0]!), pub, helpers, identifiers[1]!, random);
    assert.deepEqual(a, b);
    draws = 0;
    const expected = [1, 2].map(() => suiteOf(suite).frost.utils.randomScalar(random));
    assert.deepEqual([a[ordered[0]!], a[ordered[1]!]], expected);
  });

  test(`${suite}: a helper refuses t − 1 helpers, a helper named twice, not being a helper, and the participant as a helper`, () => {
    const shares = key(suite);
    const { identifiers: ids, public: pub } = shares[0]!;
    const h1 = signer(shares[0]!);
    refused(() => repairDeltas(h1, pub, [ids[0]!, ids[3]!], ids[1]!), /at least t = 3 helpers/);
    refused(() => repairDeltas(h1, pub, [ids[0]!, ids[3]!, ids[3]!], ids[1]!), /named twice/);
    refused(
      () => repairDeltas(h1, pub, [ids[2]!, ids[3]!, ids[4]!], ids[1]!),
      /not among the helpers/,
    );
    refused(
      () => repairDeltas(h1, pub, [ids[0]!, ids[1]!, ids[4]!], ids[1]!),
      /cannot be a helper/,
    );
  });

  test(`${suite}: a helper refuses identifiers that are not canonical or not the key's, and a share that is not its own`, () => {
    const shares = key(suite);
    const { identifiers: ids, public: pub } = shares[0]!;
    const h1 = signer(shares[0]!);
    const helpers = [ids[0]!, ids[3]!, ids[4]!];
    const zero = "00".repeat(Fn.BYTES);
    refused(() => repairDeltas(h1, pub, helpers, zero), /not a canonical identifier/);
    refused(() => repairDeltas(h1, pub, helpers, ids[1]!.toUpperCase()), /canonical identifier/);
    refused(() => repairDeltas(h1, pub, helpers, "ff".repeat(Fn.BYTES)), /canonical identifier/);
    refused(() => repairDeltas(h1, pub, helpers, `${ids[1]!}00`), /canonical identifier/);
    refused(() => repairDeltas(h1, pub, helpers, ids[1]!.slice(2)), /canonical identifier/);
    refused(() => repairDeltas(h1, pub, helpers, `${ids[1]!.slice(2)}zz`), /canonical identifier/);
    const stranger = suiteOf(suite).frost.Identifier.fromNumber(7);
    refused(() => repairDeltas(h1, pub, helpers, stranger), /holder the key has not/);
    refused(
      () => repairDeltas({ ...h1, signingShare: shares[1]!.signingShare }, pub, helpers, ids[1]!),
      /not the helper's own/,
    );
    refused(
      () => repairDeltas({ ...h1, signingShare: new Uint8Array(Fn.BYTES) }, pub, helpers, ids[1]!),
      /not the helper's own/,
    );
  });

  test(`${suite}: a delta or sigma that is not a canonical scalar is refused`, () => {
    const over = new Uint8Array(Fn.BYTES).fill(0xff);
    const one = Fn.toBytes(Fn.ONE);
    refused(() => repairSigma(suite, [one, over]), /delta at position 1 is not a canonical/);
    refused(() => repairSigma(suite, [one.slice(1)]), /delta at position 0 is not a 32-byte/);
    refused(() => combineSigmas(suite, [over]), /sigma at position 0 is not a canonical/);
  });

  test(`${suite}: the participant refuses a tampered sigma, t − 1 sigmas, and a key it does not hold`, () => {
    const shares = key(suite);
    const { identifiers: ids, public: pub } = shares[0]!;
    const sigmas = sigmasFor(shares, [1, 4, 5], 2);
    const tampered = sigmas.map((s, k) =>
      k === 1 ? Fn.toBytes(Fn.add(Fn.fromBytes(s), Fn.ONE)) : s,
    );
    refused(() => repairShare(suite, ids[1]!, tampered, pub), /does not match/);
    refused(() => repairShare(suite, ids[1]!, sigmas.slice(0, 2), pub), /at least t = 3/);
    refused(() => repairShare(suite, ids[2]!, sigmas, pub), /does not match/);
    const stranger = suiteOf(suite).frost.Identifier.fromNumber(7);
    refused(() => repairShare(suite, stranger, sigmas, pub), /not a holder/);
    assert.deepEqual(repairShare(suite, ids[1]!, sigmas, pub), signer(shares[1]!));
  });
}
