/**
 * What a client checks of the key generation server before it says anything: the key in `hello`
 * is RSA of at least 3072 bits (checked before any pin is written: a key dkeygen never uses is not
 * worth remembering), the fingerprint the server claims is that key's, and it is the one pinned —
 * given in advance, or remembered from first contact (pins.ts). Then, once the server has
 * answered the join or admin.auth, its proof: an RSASSA-PSS signature over both challenges by
 * that key (PROTOCOL §5); only then is a key seen for the first time pinned (`confirmServer`), so
 * trust on first use never remembers a key whose holder did not prove it. Contributors and admin
 * clients share these checks.
 */
import type { KeyObject } from "node:crypto";
import { fromBase64url } from "../crypto/base64url.js";
import { fingerprintOfSpki } from "../crypto/fingerprint.js";
import { rsaServerKey, serverVerify } from "../crypto/server-signature.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { MessageOf } from "../protocol/messages.js";
import { comparePin, type PinStore, pinMismatch, recordPin } from "./pins.js";

/** The server as a client knows it on one connection. */
export interface ServerKey {
  url: string;
  key: KeyObject;
  fingerprint: string;
  /** The server's challenge of this connection. */
  challenge: Uint8Array;
  /**
   * "new": first contact, to be pinned once the server proves it holds the key; "matched": as
   * pinned before; "given": a fingerprint given in advance, no pin store.
   */
  pin: "new" | "matched" | "given";
  /** Where a new pin is recorded. */
  pins?: PinStore;
}

export interface ServerKeyExpectation {
  url: string;
  /** A fingerprint given in advance (--server-fingerprint, server.json). */
  expectedFingerprint?: string;
  /** Pins for trust on first use; without them, `expectedFingerprint` is required. */
  pins?: PinStore;
}

/** Checks the server's key in `hello` (see the header); throws E_PIN_MISMATCH naming both. */
export async function checkServerHello(
  hello: MessageOf<"hello">,
  expect: ServerKeyExpectation,
): Promise<ServerKey> {
  const spki = fromBase64url(hello.server.publicKey, "server public key");
  // Never trust the fingerprint the server claims: compute it from the key it sent.
  const fingerprint = fingerprintOfSpki(spki);
  if (fingerprint !== hello.server.fingerprint) {
    throw new DkeygenError(
      ErrorCodes.PIN_MISMATCH,
      `The server at ${expect.url} claims fingerprint ${hello.server.fingerprint} but its key's is ${fingerprint}.`,
    );
  }
  const key = rsaServerKey(spki);
  if (!key) {
    throw new DkeygenError(
      ErrorCodes.PIN_MISMATCH,
      `The server at ${expect.url} presented a key that is not RSA of at least 3072 bits with e = 65537; refusing it.`,
    );
  }
  let pin: ServerKey["pin"];
  if (expect.pins) {
    pin = await comparePin(expect.pins, expect.url, fingerprint, expect.expectedFingerprint);
  } else if (expect.expectedFingerprint === undefined) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      `Nothing to check the server at ${expect.url} against: give its fingerprint or a pin store.`,
    );
  } else if (expect.expectedFingerprint !== fingerprint) {
    throw pinMismatch(expect.url, expect.expectedFingerprint, fingerprint);
  } else {
    pin = "given";
  }
  return {
    url: expect.url,
    key,
    fingerprint,
    challenge: fromBase64url(hello.challenge, "challenge", 32),
    pin,
    ...(expect.pins === undefined ? {} : { pins: expect.pins }),
  };
}

/**
 * Checks the server's proof of possession (welcome.proof, admin.ready.proof) over `data`;
 * throws E_BAD_SIGNATURE: a server that cannot sign with the pinned key is refused.
 */
export function checkServerProof(server: ServerKey, data: Uint8Array, proof: string): void {
  if (!serverVerify(server.key, data, fromBase64url(proof, "proof"))) {
    throw new DkeygenError(
      ErrorCodes.BAD_SIGNATURE,
      `The server at ${server.url} did not prove it holds key ${server.fingerprint} ` +
        "(its answer to this connection's handshake is not signed by that key); refusing it.",
    );
  }
}

/** After the proof: pins a key seen for the first time; says whether it was "pinned" now. */
export async function confirmServer(server: ServerKey): Promise<"pinned" | "matched" | "given"> {
  if (server.pin !== "new" || server.pins === undefined) {
    return server.pin === "new" ? "given" : server.pin;
  }
  await recordPin(server.pins, server.url, server.fingerprint);
  return "pinned";
}
