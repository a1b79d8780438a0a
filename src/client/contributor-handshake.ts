/**
 * The contributor's side of the handshake (PROTOCOL §4), as pure steps over a checked server key
 * (server-key.ts): the join it answers a hello with, signed over the server's challenge and its
 * own; the check of the server's proof in `welcome`; and which errors during the handshake are
 * final. contributor.ts runs them in order on each connection.
 */
import { toBase64url } from "../crypto/base64url.js";
import { signMessage } from "../crypto/signature.js";
import { ErrorCodes } from "../errors.js";
import type { MessageOf } from "../protocol/messages.js";
import { joinSignedData, welcomeProofData } from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import type { ContributorState } from "./contributor-state.js";
import { checkServerProof, type ServerKey } from "./server-key.js";

/** What a join says of the contributor: its identity, and its token and name if it has them. */
export interface JoinOptions {
  state: ContributorState;
  token?: string;
  name?: string;
}

/** The join answering `server`'s hello, signed with the contributor's identity key. */
export function joinMessage(
  o: JoinOptions,
  server: ServerKey,
  clientChallenge: Uint8Array,
): MessageOf<"join"> {
  const { state } = o;
  const { fingerprint } = server;
  const token = o.token ?? "";
  const signature = signMessage(
    state.privateKey,
    joinSignedData(
      server.challenge,
      fingerprint,
      state.identity,
      token,
      o.name ?? "",
      clientChallenge,
    ),
  );
  return {
    type: "join",
    v: PROTOCOL_VERSION,
    identity: toBase64url(state.identity),
    clientChallenge: toBase64url(clientChallenge),
    signature: toBase64url(signature),
    ...(o.token === undefined ? {} : { token: o.token }),
    ...(o.name === undefined ? {} : { name: o.name }),
  };
}

/** Checks the server's proof that it holds the pinned key, on this connection, for this join. */
export function checkWelcome(
  server: ServerKey,
  contributorId: string,
  msg: MessageOf<"welcome">,
  clientChallenge: Uint8Array,
): void {
  // A welcome for another contributor is no proof for this one.
  const id = msg.contributorId === contributorId ? msg.contributorId : "";
  checkServerProof(
    server,
    welcomeProofData(
      server.challenge,
      clientChallenge,
      server.fingerprint,
      id,
      msg.name ?? "",
      msg.enrolled,
    ),
    msg.proof,
  );
}

/** Server errors that, during the handshake, stop the contributor for good. */
export const FATAL_DURING_HANDSHAKE: readonly string[] = [
  ErrorCodes.NOT_ENROLLED,
  ErrorCodes.VERSION_MISMATCH,
  ErrorCodes.BAD_SIGNATURE,
];
