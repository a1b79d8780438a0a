/**
 * A contributor's answer to one invitation (PROTOCOL §5, §7.1): check that the server's key signed
 * the `round.open`; compute the secret phrase with the contributor's own keyed generator from the
 * round id, the seed phrase and fresh entropy; seal it to the server's key with the contribution's
 * associated data; sign the whole contribution (encrypt-then-sign). Pure apart from the crypto and
 * the entropy pool it is given; the phrase is wiped as soon as it is sealed.
 */
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { sealEnvelope } from "../crypto/envelope.js";
import { secretPhraseInput } from "../crypto/phrase-generators.js";
import type { RandomSource } from "../crypto/random.js";
import { serverVerify } from "../crypto/server-signature.js";
import { signMessage } from "../crypto/signature.js";
import { envelopeToWire } from "../protocol/envelope-wire.js";
import type { MessageOf } from "../protocol/messages.js";
import {
  contributionAad,
  contributionSignedData,
  roundOpenSignedData,
} from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import type { ContributorState } from "./contributor-state.js";
import type { EntropyPool } from "./entropy.js";
import type { ServerKey } from "./server-key.js";

/** Whether the server's key signed this invitation, every field of it. */
export function invitationSigned(server: ServerKey, open: MessageOf<"round.open">): boolean {
  const signed = roundOpenSignedData({
    roundId: open.roundId,
    purpose: open.purpose,
    seed: fromBase64url(open.seed, "seed", 32),
    serverCommitment: fromBase64url(open.serverCommitment, "serverCommitment", 32),
    deadline: open.deadline,
    participants: open.participants,
  });
  return serverVerify(server.key, signed, fromBase64url(open.signature, "signature"));
}

/** The contribution answering `open` (its signature already checked by the caller). */
export function contributionFor(
  open: MessageOf<"round.open">,
  server: ServerKey,
  state: ContributorState,
  entropy: EntropyPool,
  random: RandomSource,
): MessageOf<"contribution"> {
  const id = state.contributorId;
  const drawn = entropy.draw();
  const phrase = state.generator.compute(
    state.generatorKey.expose(),
    secretPhraseInput(open.roundId, fromBase64url(open.seed, "seed", 32), drawn),
  );
  drawn.fill(0);
  const aad = contributionAad(open.roundId, id, server.fingerprint);
  let envelope: MessageOf<"contribution">["envelope"];
  try {
    envelope = envelopeToWire(sealEnvelope(server.key, phrase, aad, random));
  } finally {
    phrase.fill(0);
  }
  const signature = signMessage(
    state.privateKey,
    contributionSignedData(open.roundId, id, server.fingerprint, envelope),
  );
  return {
    type: "contribution",
    v: PROTOCOL_VERSION,
    roundId: open.roundId,
    contributorId: id,
    envelope,
    signature: toBase64url(signature),
  };
}
