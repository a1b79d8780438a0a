/**
 * The two ways a peer authenticates after `hello`, and the server's proof that it holds its key:
 *
 * - `join` (contributors): the contributor signs the server's challenge, the server's fingerprint,
 *   its identity key, its token and name and a challenge of its own (Ed25519). An enrolled
 *   identity joins; an unknown one needs a valid single-use token, checked after the signature
 *   (possession first, then the token is spent). `welcome` carries the server's RSASSA-PSS
 *   signature over both challenges and the admission, which the contributor checks against the key
 *   it pinned: a server that does not hold that key cannot complete the handshake.
 * - `admin.auth` (admins): an HMAC under the admin token over the server's challenge, its
 *   fingerprint and the admin's challenge; `admin.ready` carries the server's signature, and both
 *   sides derive the admin session's MAC keys (protocol/admin-channel.ts).
 *
 * A failed handshake is refused (fatal): the peer gets one error and the connection closes.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import { serverSign } from "../crypto/server-signature.js";
import { publicKeyFromRaw, verifySignature } from "../crypto/signature.js";
import { DkeygenError, describeError, ErrorCodes, isDkeygenError } from "../errors.js";
import { AdminChannel, adminSessionKeys } from "../protocol/admin-channel.js";
import { contributorIdOf } from "../protocol/identity.js";
import type { MessageOf } from "../protocol/messages.js";
import {
  adminProofData,
  adminReadyProofData,
  joinSignedData,
  welcomeProofData,
} from "../protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../protocol/version.js";
import { CloseCodes } from "../transport/types.js";
import type { Peer, ServerContext } from "./server-context.js";

const badJoinSignature = () =>
  new DkeygenError(ErrorCodes.BAD_SIGNATURE, "The join signature does not verify.");

export async function handleJoin(
  ctx: ServerContext,
  peer: Peer,
  msg: MessageOf<"join">,
): Promise<void> {
  peer.machine.transition("joining");
  let id: string;
  let enrolled = false;
  let name: string | undefined;
  try {
    // The schema guarantees every field decodes; a key that is not a point fails to verify.
    const identity = fromBase64url(msg.identity, "identity", 32);
    const clientChallenge = fromBase64url(msg.clientChallenge, "clientChallenge", 32);
    const signature = fromBase64url(msg.signature, "signature", 64);
    const signed = joinSignedData(
      peer.challenge,
      ctx.fingerprint,
      identity,
      msg.token ?? "",
      msg.name ?? "",
      clientChallenge,
    );
    id = contributorIdOf(identity);
    let entry = ctx.c.registry.get(id);
    if (entry) {
      if (!verifySignature(entry.key, signed, signature)) throw badJoinSignature();
    } else {
      if (msg.token === undefined) {
        throw new DkeygenError(
          ErrorCodes.NOT_ENROLLED,
          `Contributor ${id} is not enrolled; join once with an enrollment token (dkeygen enroll).`,
        );
      }
      // Check possession of the key before spending the token on it.
      if (!verifySignature(publicKeyFromRaw(identity), signed, signature)) throw badJoinSignature();
      await ctx.c.registry.enroll(identity, msg.token, new Date(ctx.c.clock()));
      entry = ctx.c.registry.get(id)!;
      enrolled = true;
    }
    if (peer.machine.state !== "joining") return; // the connection closed while enrolling
    // The name an admin gave at enrollment wins over the one the contributor asks for.
    name = entry.name ?? msg.name;
    const proof = serverSign(
      ctx.c.identity.privateKey,
      welcomeProofData(peer.challenge, clientChallenge, ctx.fingerprint, id, name ?? "", enrolled),
    );
    clearTimeout(peer.handshakeTimer);
    const previous = ctx.contributors.get(id);
    if (previous && previous !== peer) {
      ctx.drop(previous, CloseCodes.POLICY, "replaced by a newer connection");
    }
    peer.machine.transition("contributor");
    peer.contributorId = id;
    peer.identity = identity;
    if (name !== undefined) peer.name = name;
    ctx.contributors.set(id, peer);
    ctx.send(peer, {
      type: "welcome",
      v: PROTOCOL_VERSION,
      contributorId: id,
      enrolled,
      ...(name === undefined ? {} : { name }),
      proof: toBase64url(proof),
    });
  } catch (error) {
    if (isDkeygenError(error)) ctx.refuse(peer, error);
    else {
      ctx.c.logger.error({ err: describeError(error) }, "join failed");
      ctx.refuse(
        peer,
        new DkeygenError(ErrorCodes.OPERATIONAL, "The server could not admit the contributor."),
      );
    }
    return;
  }
  ctx.c.logger.info(
    { contributorId: id, name, remote: peer.connection.remote, enrolled },
    enrolled ? "contributor enrolled and joined" : "contributor joined",
  );
  ctx.emit({
    type: "contributor.joined",
    contributorId: id,
    enrolled,
    ...(name === undefined ? {} : { name }),
  });
}

export function handleAdminAuth(ctx: ServerContext, peer: Peer, msg: MessageOf<"admin.auth">) {
  const clientChallenge = fromBase64url(msg.clientChallenge, "clientChallenge", 32);
  const token = ctx.c.adminToken.expose();
  const expected = createHmac("sha256", token)
    .update(adminProofData(peer.challenge, ctx.fingerprint, clientChallenge))
    .digest();
  if (!timingSafeEqual(expected, fromBase64url(msg.proof, "proof", 32))) {
    ctx.refuse(peer, new DkeygenError(ErrorCodes.UNAUTHORIZED, "Admin authentication failed."));
    return;
  }
  const proof = serverSign(
    ctx.c.identity.privateKey,
    adminReadyProofData(peer.challenge, clientChallenge, ctx.fingerprint),
  );
  clearTimeout(peer.handshakeTimer);
  peer.machine.transition("admin");
  ctx.send(peer, { type: "admin.ready", v: PROTOCOL_VERSION, proof: toBase64url(proof) });
  // From here on everything this session sends and receives travels in MACed admin frames.
  peer.admin = new AdminChannel(
    adminSessionKeys(token, peer.challenge, clientChallenge, ctx.fingerprint),
    "server",
  );
  ctx.c.logger.info({ remote: peer.connection.remote }, "admin connected");
}
