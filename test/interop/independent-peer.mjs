#!/usr/bin/env node
// An independent dkeygen peer: a contributor and an admin client for the WebSocket protocol,
// version 4, written from docs/PROTOCOL.md alone (§1 canonical encoding, §2 keys and
// fingerprints, §3 framing, §4 messages and sessions, §5 what is signed, §6 the envelope, §7 rounds:
// commit then reveal, §7.1 and §7.3 the secret phrase, §8 enrollment, §11 error codes, §13.2 the
// canonical JSON of the params hash), without a look at dkeygen's own code.
// It uses only node:crypto (RFC 8017 RSA-OAEP and RSASSA-PSS, RFC 8032 Ed25519, RFC 5869 HKDF,
// RFC 2104 HMAC, AES-256-GCM) and the `ws` package (RFC 6455). Where the text was silent, the
// choice made here is marked "spec gap" in a comment.
//
//   node independent-peer.mjs contributor --url URL [--fingerprint FP] [--token-file F]
//                                         --state DIR [--name NAME]
//   node independent-peer.mjs admin --url URL --fingerprint FP --token-file F
//                                   [--generate PURPOSE] [--param KEY=VALUE ...]
//
// The contributor prints one JSON line per event (welcome; per round: committed, revealed,
// receipt, closed; and ignored, left-out, refused, contradicted) and runs until stopped (SIGTERM,
// SIGINT) or until the server goes away; the admin client prints one JSON result line. A failure
// prints {"ok":false,"error":{"code","message"}} and exits 1 (2 for a usage error).

import {
  constants,
  createCipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  hkdfSync,
  publicEncrypt,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
} from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import WebSocket from "ws";

/** The protocol version: `v` in every message and `V` in every LP of the wire protocol (§1). */
export const VERSION = 4;
const V = String(VERSION);
/** §3: a frame larger than this is refused before it is parsed. */
export const MAX_FRAME_BYTES = 65_536;
/** §4 "Timeouts": the reference clients wait at most 10 s for each handshake answer. */
const HANDSHAKE_MS = 10_000;
/** §4 "Timeouts": admin.generate is answered when its round has closed, at most the server's
 *  commit and reveal timeouts (10 s each by default) plus the derivation. The reference admin
 *  client sets no limit; hello does not announce the server's timeouts, so this one, which
 *  runs under tests, gives up after 60 s rather than never. */
const ADMIN_ANSWER_MS = 60_000;

/** An error with one of the stable codes of §11. */
export class PeerError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "PeerError";
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------
// §1 Canonical encoding: LP(x1, …, xn) = len(x1) ‖ x1 ‖ … with len a u32 big-endian byte count;
// strings are UTF-8, byte fields are their raw bytes. Numbers are never items: the caller writes
// their decimal string (or u32) itself, so a number cannot slip in with an ambiguous encoding.

export function lp(...items) {
  const parts = [];
  for (const item of items) {
    let bytes;
    if (typeof item === "string") bytes = Buffer.from(item, "utf8");
    else if (item instanceof Uint8Array) bytes = Buffer.from(item);
    else throw new TypeError(`lp: an item must be a string or bytes, not ${typeof item}`);
    parts.push(u32(bytes.length), bytes);
  }
  return Buffer.concat(parts);
}

export function u32(n) {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(n);
  return out;
}

// Canonical base64url without padding (RFC 4648 §5): one spelling per byte string. Node's decoder
// is lenient (it skips bad characters, ignores non-zero trailing bits), so a string is accepted
// only when it uses the alphabet and re-encodes to itself; that also refuses a length of 1 mod 4.

const B64URL = /^[A-Za-z0-9_-]*$/;

export function toB64u(bytes) {
  return Buffer.from(bytes).toString("base64url");
}

/** Decodes `text` (the field `field`) to bytes; `min`..`max` bytes (§4 `b64(n)`, `b64(≤n)`). */
export function fromB64u(text, field, min = 1, max = min) {
  if (typeof text !== "string" || !B64URL.test(text)) {
    throw malformed(field, "is not base64url");
  }
  const bytes = Buffer.from(text, "base64url");
  if (bytes.toString("base64url") !== text) throw malformed(field, "is not canonical base64url");
  if (bytes.length < min || bytes.length > max) {
    throw malformed(field, min === max ? `is not ${min} bytes` : `is not ${min} to ${max} bytes`);
  }
  return bytes;
}

function malformed(field, what) {
  return new PeerError("E_MALFORMED_MESSAGE", `The field ${field} ${what}.`);
}

// ---------------------------------------------------------------------------------------------
// §2 Fingerprints: "SHA256:" ‖ unpadded standard base64 of SHA-256(DER SubjectPublicKeyInfo).

export function fingerprint(spkiDer) {
  return `SHA256:${createHash("sha256").update(spkiDer).digest("base64").replace(/=+$/, "")}`;
}

/** RFC 8410: the SPKI of an Ed25519 key is this 12-byte prefix followed by the raw 32 bytes. */
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** A contributor's id: the fingerprint of its Ed25519 SPKI. */
export function contributorIdOf(rawPublicKey) {
  return fingerprint(Buffer.concat([ED25519_SPKI_PREFIX, rawPublicKey]));
}

// ---------------------------------------------------------------------------------------------
// §5 What is signed, MACed or hashed: each construction exactly as its LP is written there.
// `challenge` is hello's, `clientChallenge` the one this peer chose; both as raw bytes.

export function joinData({ challenge, serverFingerprint, identity, token, name, clientChallenge }) {
  return lp(
    "dkeygen/v1/join",
    V,
    challenge,
    serverFingerprint,
    identity,
    token ?? "",
    name ?? "",
    clientChallenge,
  );
}

export function welcomeData({
  challenge,
  clientChallenge,
  serverFingerprint,
  contributorId,
  name,
  enrolled,
}) {
  return lp(
    "dkeygen/v1/welcome",
    V,
    challenge,
    clientChallenge,
    serverFingerprint,
    contributorId,
    name ?? "",
    enrolled ? "1" : "0",
  );
}

export function adminProofData({ challenge, serverFingerprint, clientChallenge }) {
  return lp("dkeygen/v1/admin", V, challenge, serverFingerprint, clientChallenge);
}

export function adminReadyData({ challenge, clientChallenge, serverFingerprint }) {
  return lp("dkeygen/v1/admin-ready", V, challenge, clientChallenge, serverFingerprint);
}

/** K_dir of an admin session, dir "to-server" or "to-admin" (HKDF-SHA-256, RFC 5869). */
export function adminSessionKey(
  { adminToken, challenge, clientChallenge, serverFingerprint },
  dir,
) {
  // §5: the raw 32 + 32 bytes, plain concatenation, no length prefixes.
  const salt = Buffer.concat([challenge, clientChallenge]);
  const info = lp("dkeygen/v1/admin-session", V, serverFingerprint, dir);
  return Buffer.from(hkdfSync("sha256", adminToken, salt, info, 32));
}

export function adminFrameData(dir, seq, body) {
  return lp("dkeygen/v1/admin-frame", V, dir, String(seq), body);
}

export function adminFrameMac(key, dir, seq, body) {
  return createHmac("sha256", key)
    .update(adminFrameData(dir, seq, body))
    .digest();
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest();

/**
 * §13.2 canonicalJson: RFC 8785 restricted to what parameters hold — members sorted by the UTF-16
 * code units of their names (JavaScript's default string order), no whitespace, strings as
 * JSON.stringify writes them, integers in decimal (-0 as 0); any other number is refused.
 */
export function canonicalJson(value) {
  if (value === null || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new PeerError("E_INVALID_INPUT", "A parameter is a number that is not an integer.");
    }
    return String(value === 0 ? 0 : value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isObject(value)) {
    const members = Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`);
    return `{${members.join(",")}}`;
  }
  throw new PeerError("E_INVALID_INPUT", `A parameter of type ${typeof value} has no JSON form.`);
}

/**
 * §5 params hash: over the round's parameters exactly as given — the `params` of admin.generate
 * as sent, `{}` when none were given — not the parsed, default-completed object of §13.2:
 * `{"digits":"8"}` and `{"digits":8}` and `{}` and `{"digits":6}` are four different hashes.
 * Only its canonicalJson is §13.2's. The caller passes the params as given.
 */
export function paramsHash(purpose, params) {
  return sha256(lp("dkeygen/v1/params", V, purpose, canonicalJson(params)));
}

/** The LP a round.open's signature covers; `open` is the message as received (§5). */
export function roundOpenData(open) {
  return lp(
    "dkeygen/v1/round-open",
    V,
    open.roundId,
    open.purpose,
    fromB64u(open.paramsHash, "paramsHash", 32),
    fromB64u(open.seed, "seed", 32),
    fromB64u(open.serverCommitment, "serverCommitment", 32),
    // §1: a key is an LP item as its raw bytes.
    fromB64u(open.roundKey, "roundKey", 32),
    open.commitDeadline,
    open.revealDeadline,
    String(open.invited.length),
    ...open.invited,
  );
}

export function serverCommitment(roundId, serverSecret) {
  return sha256(lp("dkeygen/v1/server-secret", V, roundId, serverSecret));
}

/** §6: the associated data of a contribution's envelope. */
export function contributionAad(roundId, contributorId, serverFingerprint) {
  return lp("dkeygen/v1/contribution", V, roundId, contributorId, serverFingerprint);
}

/** The envelope's fields as the base64url strings sent (§1's table, §5 commitment). */
const envelopeItems = (envelope) => [
  envelope.alg,
  envelope.ek,
  envelope.iv,
  envelope.ct,
  envelope.tag,
];

/** §5 commitment: SHA-256 of the envelope the reveal will carry, bound to round and sender. */
export function contributionCommitment(roundId, contributorId, serverFingerprint, envelope) {
  return sha256(
    lp(
      "dkeygen/v1/contribution-commitment",
      V,
      roundId,
      contributorId,
      serverFingerprint,
      ...envelopeItems(envelope),
    ),
  );
}

/** §5 commit: what the contributor's Ed25519 signature covers; the commitment as its raw 32
 *  bytes (§1: hashes and commitments are LP items as raw bytes). */
export function commitData(roundId, contributorId, serverFingerprint, commitment) {
  return lp("dkeygen/v1/commit", V, roundId, contributorId, serverFingerprint, commitment);
}

/** §5 commit set: `commits` as in round.commits (sorted by contributorId), commitments raw. */
export function commitSetHash(roundId, serverFingerprint, commits) {
  const items = commits.flatMap((entry) => [
    entry.contributorId,
    fromB64u(entry.commitment, "commitment", 32),
  ]);
  return sha256(
    lp("dkeygen/v1/commit-set", V, roundId, serverFingerprint, String(commits.length), ...items),
  );
}

/** §5: what the round key's signature of round.commits covers. */
export function commitSetSignatureData(roundId, setHash) {
  return lp("dkeygen/v1/commit-set-signature", V, roundId, setHash);
}

/** §5 reveal: the hash of the commit set it countersigns and the commitment (raw 32 bytes) of
 *  the envelope the reveal carries — not the envelope's fields, which the commitment binds. */
export function revealData(roundId, contributorId, serverFingerprint, setHash, commitment) {
  return lp(
    "dkeygen/v1/contribution-reveal",
    V,
    roundId,
    contributorId,
    serverFingerprint,
    setHash,
    commitment,
  );
}

/** §5 receipt: what the round key's signature of round.receipt covers. */
export function receiptData(roundId, contributorId, setHash, commitment) {
  return lp("dkeygen/v1/reveal-receipt", V, roundId, contributorId, setHash, commitment);
}

/**
 * §5 round.closed: what the round key's signature covers; `closed` is the message as received.
 * `setHash` as its raw 32 bytes, or "" (a zero-length item) when absent; `missing` after its
 * count, `m` = 0 without it; `reason` is not covered.
 */
export function roundClosedData(closed) {
  const missing = closed.missing ?? [];
  return lp(
    "dkeygen/v1/round-closed",
    V,
    closed.roundId,
    closed.outcome,
    String(closed.accepted),
    closed.setHash === undefined ? "" : fromB64u(closed.setHash, "setHash", 32),
    String(missing.length),
    ...missing,
  );
}

/** RSASSA-PSS (RFC 8017 §8.1) with SHA-256, MGF1-SHA-256 and a 32-byte salt, by the server. */
export function verifyServerSignature(publicKey, data, signature) {
  return verify(
    "sha256",
    data,
    { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
    signature,
  );
}

/**
 * §5 round key: the round's Ed25519 public key, `roundKey` of a round.open whose RSA signature
 * verified (raw 32 bytes, wrapped in its RFC 8410 SPKI). Spec gap: §5 does not say what a
 * receiver does with 32 bytes that are no Ed25519 point; as §4 says of a join's `identity`, no
 * signature verifies under it (verifyRoundSignature answers false), so that round's set,
 * receipts and closing are all ignored.
 */
export function roundPublicKey(rawRoundKey) {
  try {
    return createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, rawRoundKey]),
      format: "der",
      type: "spki",
    });
  } catch {
    return null;
  }
}

/** Ed25519 (RFC 8032) by the round key (§5): round.commits, round.receipt, round.closed. */
export function verifyRoundSignature(roundKey, data, signature) {
  if (roundKey === null) return false;
  try {
    return verify(null, data, roundKey, signature);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// §6 The envelope: AES-256-GCM under a fresh 32-byte key, the key wrapped with RSA-OAEP (SHA-256,
// MGF1-SHA-256) whose label is the same associated data.

export function seal(publicKey, plaintext, aad) {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: 16 });
  cipher.setAAD(aad);
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const tag = cipher.getAuthTag();
  const ek = publicEncrypt(
    {
      key: publicKey,
      padding: constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: "sha256",
      oaepLabel: aad,
    },
    key,
  );
  key.fill(0);
  return {
    alg: "RSA-OAEP-256/A256GCM",
    ek: toB64u(ek),
    iv: toB64u(iv),
    ct: toB64u(ct),
    tag: toB64u(tag),
  };
}

// ---------------------------------------------------------------------------------------------
// §7.3 The entropy pool (user input empty: the OS CSPRNG alone, `--entropy os`) and §7.1 the
// secret phrase with the hmac-sha512 generator: phrase = HMAC-SHA-512(k, LP(label, roundId,
// seed, E)). No V in this LP: §7.1 writes none (the server cannot check a phrase anyway).

const sha512 = (bytes) => createHash("sha512").update(bytes).digest();

export class EntropyPool {
  #state;

  constructor(userInput = Buffer.alloc(0)) {
    this.#state = sha512(lp("dkeygen/v1/entropy-pool", userInput, randomBytes(64)));
  }

  /** E_i, then the ratchet: an earlier E cannot be recomputed from a later state. */
  draw() {
    const e = sha512(lp("dkeygen/v1/entropy-draw", this.#state, randomBytes(32)));
    this.#state = sha512(lp("dkeygen/v1/entropy-ratchet", this.#state));
    return e;
  }
}

export function secretPhrase(generatorKey, roundId, seed, entropy) {
  return createHmac("sha512", generatorKey)
    .update(lp("dkeygen/v1/secret-phrase", roundId, seed, entropy))
    .digest();
}

// ---------------------------------------------------------------------------------------------
// §3–§4 Messages. A receiver rejects unknown types and fields, missing fields and out-of-range
// values; each server → peer message is checked against its row of §4 here, field by field.

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const PURPOSE = /^[a-z][a-z0-9-]{0,31}$/;
const REQUEST_ID = /^[A-Za-z0-9_-]{1,64}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const HEX64 = /^[0-9a-f]{64}$/;

// A field check returns nothing or throws naming the field; `path` is the field's dotted name.
const isObject = (x) => typeof x === "object" && x !== null && !Array.isArray(x);
const text =
  (pattern, max = 1024) =>
  (x, path) => {
    if (typeof x !== "string" || x.length > max || (pattern && !pattern.test(x))) {
      throw malformed(path, "is not valid");
    }
  };
const bytes =
  (min, max = min) =>
  (x, path) => {
    fromB64u(x, path, min, max);
  };
const integer = (min, max) => (x, path) => {
  if (!Number.isSafeInteger(x) || x < min || x > max)
    throw malformed(path, `is not an integer ${min}..${max}`);
};
const boolean = (x, path) => {
  if (typeof x !== "boolean") throw malformed(path, "is not a boolean");
};
const oneOf =
  (...values) =>
  (x, path) => {
    if (!values.includes(x)) throw malformed(path, `is not one of ${values.join(", ")}`);
  };
const time = (x, path) => {
  // As Date.prototype.toISOString writes it (PROTOCOL.md's preamble): it survives a round trip.
  if (typeof x !== "string" || !ISO_TIME.test(x) || new Date(x).toISOString() !== x) {
    throw malformed(path, "is not an ISO 8601 UTC time");
  }
};
const anyObject = (x, path) => {
  if (!isObject(x)) throw malformed(path, "is not an object");
};
const arrayOf = (item, max) => (x, path) => {
  if (!Array.isArray(x) || x.length > max) throw malformed(path, "is not a list");
  for (const [i, element] of x.entries()) item(element, `${path}[${i}]`);
};
const object = (shape) => (x, path) => checkShape(x, shape, path);
/** Bytewise order of ASCII/UTF-8 strings (§4, §5: contributor ids are sorted this way). */
export const compareBytewise = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));
/**
 * A list of `min`..`max` items whose `keyOf` values are each at most once; with `sorted`, in
 * strictly ascending bytewise order (which also rules out repeats).
 */
const listOf =
  (item, { min, max, keyOf = (x) => x, sorted = false }) =>
  (x, path) => {
    arrayOf(item, max)(x, path);
    if (x.length < min) throw malformed(path, `has fewer than ${min} items`);
    const keys = x.map(keyOf);
    if (sorted) {
      for (let i = 1; i < keys.length; i++) {
        if (compareBytewise(keys[i - 1], keys[i]) >= 0) {
          throw malformed(path, "is not strictly sorted by contributor id");
        }
      }
    } else if (new Set(keys).size !== keys.length) {
      throw malformed(path, "names an item more than once");
    }
  };

const fp = text(FINGERPRINT);
const roundId = bytes(16);
const serverSig = bytes(1, 512);
/** §4: round.commits, round.receipt and round.closed carry an Ed25519 signature by the round key. */
const roundSig = bytes(64);
const envelope = object({
  alg: oneOf("RSA-OAEP-256/A256GCM"),
  ek: bytes(1, 1024),
  iv: bytes(12),
  ct: bytes(1, 4096),
  tag: bytes(16),
});

/** `shape` maps each field to its check; a name ending in "?" is optional. */
function checkShape(x, shape, path) {
  if (!isObject(x)) throw malformed(path || "message", "is not an object");
  const known = new Set();
  for (const [key, check] of Object.entries(shape)) {
    const optional = key.endsWith("?");
    const field = optional ? key.slice(0, -1) : key;
    known.add(field);
    const where = path ? `${path}.${field}` : field;
    if (!Object.hasOwn(x, field)) {
      if (optional) continue;
      throw malformed(where, "is missing");
    }
    check(x[field], where);
  }
  for (const field of Object.keys(x)) {
    if (!known.has(field)) throw malformed(JSON.stringify(field).slice(0, 66), "is unknown");
  }
}

/** §4 "Server → peer" and admin.frame: the fields besides `type` and `v`. */
export const SERVER_MESSAGES = {
  hello: {
    server: object({ publicKey: bytes(1, 2048), fingerprint: fp, keyType: oneOf("rsa") }),
    challenge: bytes(32),
    heartbeatMs: integer(1000, 600_000),
  },
  welcome: { contributorId: fp, "name?": text(NAME), enrolled: boolean, proof: serverSig },
  // §7: revealDeadline = commitDeadline + the reveal timeout, but §4's row does not require the
  // order of a receiver, and the reference contributor does not check deadlines: nor does this.
  "round.open": {
    roundId,
    purpose: text(PURPOSE),
    paramsHash: bytes(32),
    seed: bytes(32),
    serverCommitment: bytes(32),
    roundKey: bytes(32),
    commitDeadline: time,
    revealDeadline: time,
    invited: listOf(fp, { min: 1, max: 256 }),
    signature: serverSig,
  },
  "round.commits": {
    roundId,
    commits: listOf(object({ contributorId: fp, commitment: bytes(32) }), {
      min: 1,
      max: 256,
      keyOf: (entry) => entry.contributorId,
      sorted: true,
    }),
    signature: roundSig,
  },
  "round.receipt": {
    roundId,
    contributorId: fp,
    setHash: bytes(32),
    commitment: bytes(32),
    signature: roundSig,
  },
  // The rules across fields (missing only when aborted, …) are in CROSS_FIELD_RULES below.
  "round.closed": {
    roundId,
    outcome: oneOf("completed", "failed", "aborted"),
    accepted: integer(0, 256),
    "missing?": listOf(fp, { min: 1, max: 256, sorted: true }),
    "reason?": text(null, 512),
    "setHash?": bytes(32),
    signature: roundSig,
  },
  error: {
    code: text(/^E_[A-Z_]{1,40}$/),
    message: text(null, 1024),
    "roundId?": roundId,
    "requestId?": text(REQUEST_ID),
    fatal: boolean,
  },
  "admin.ready": { proof: serverSig },
  "admin.round": {
    requestId: text(REQUEST_ID),
    record: object({
      id: text(/^[0-9A-HJKMNP-TV-Z]{26}$/),
      purpose: text(PURPOSE),
      createdAt: time,
      roundId,
      participants: arrayOf(fp, 4096),
      algorithm: text(null, 64),
      public: anyObject,
      "owner?": text(/^(?:@admin|rq:[A-Za-z0-9_-]{22}|[A-Za-z0-9][A-Za-z0-9._@-]{0,63})$/),
    }),
    "secret?": envelope,
  },
  "admin.status.result": {
    requestId: text(REQUEST_ID),
    contributors: arrayOf(object({ id: fp, "name?": text(NAME) }), 100_000),
    enrolled: integer(0, Number.MAX_SAFE_INTEGER),
    roundsRunning: integer(0, Number.MAX_SAFE_INTEGER),
    store: object({
      kind: text(/^[a-z]{1,16}$/),
      "lines?": integer(0, Number.MAX_SAFE_INTEGER),
      "head?": text(HEX64),
    }),
  },
  "admin.frame": {
    seq: integer(0, Number.MAX_SAFE_INTEGER),
    body: (x, path) => {
      if (typeof x !== "string" || x.length < 2 || x.length > 65_536)
        throw malformed(path, "is not 2..65536 characters");
    },
    mac: bytes(32),
  },
};

/**
 * §4's conditions that tie one field to another, checked after the fields' own. round.closed:
 * `accepted` is 0 when failed, `missing` only when aborted, `setHash` absent only when the round
 * failed (before a commit set). Spec gap: §4 does not say that an aborted round.closed must
 * carry `missing`; one without it is taken (it names no one).
 */
const CROSS_FIELD_RULES = {
  "round.closed": (closed) => {
    if (closed.outcome === "failed" && closed.accepted !== 0) {
      throw malformed("accepted", "is not 0 in a failed round");
    }
    if (closed.missing !== undefined && closed.outcome !== "aborted") {
      throw malformed("missing", "is only for an aborted round");
    }
    if (closed.setHash === undefined && closed.outcome !== "failed") {
      throw malformed("setHash", "is missing");
    }
  },
};

/**
 * Parses one text frame: JSON, an object, a string `type`, an integer `v` equal to 3, then
 * the fields of its §4 row. `allowed` lists the types this phase takes.
 */
export function parseMessage(textFrame, allowed) {
  let message;
  try {
    message = JSON.parse(textFrame);
  } catch {
    throw new PeerError("E_MALFORMED_MESSAGE", "The message is not JSON.");
  }
  if (!isObject(message) || typeof message.type !== "string") throw malformed("type", "is missing");
  if (!Number.isInteger(message.v)) throw malformed("v", "is not an integer");
  if (message.v !== VERSION) {
    throw new PeerError(
      "E_VERSION_MISMATCH",
      `The server speaks protocol version ${message.v}, not ${VERSION}.`,
    );
  }
  const shape = SERVER_MESSAGES[message.type];
  if (!shape) throw malformed("type", "is not a known message type");
  const { type, v, ...fields } = message;
  checkShape(fields, shape, "");
  CROSS_FIELD_RULES[type]?.(fields);
  if (!allowed.includes(type)) {
    throw new PeerError("E_UNEXPECTED_MESSAGE", `A ${type} message was not expected now.`);
  }
  return message;
}

// ---------------------------------------------------------------------------------------------
// §2, §4 "Conversation": checking the server's key before anything is sent or pinned.

/**
 * Checks hello's key: an RSA key of at least 3072 bits, whose fingerprint is the one claimed and,
 * when one is pinned or given, the expected one. Returns the key and its fingerprint.
 */
export function checkServerKey(hello, expectedFingerprint) {
  const spki = fromB64u(hello.server.publicKey, "server.publicKey", 1, 2048);
  let key;
  try {
    key = createPublicKey({ key: spki, format: "der", type: "spki" });
  } catch {
    throw new PeerError("E_PIN_MISMATCH", "The server's public key is not a DER SPKI.");
  }
  // §4 "What a client checks of hello", in its order; any failure is E_PIN_MISMATCH.
  if (
    key.asymmetricKeyType !== "rsa" ||
    key.asymmetricKeyDetails.modulusLength < 3072 ||
    key.asymmetricKeyDetails.publicExponent !== 65537n
  ) {
    throw new PeerError(
      "E_PIN_MISMATCH",
      "The server's key is not an RSA key of at least 3072 bits with e = 65537.",
    );
  }
  // The fingerprint is over the bytes as received (§4); a BER or otherwise re-encodable key is
  // not "a DER SubjectPublicKeyInfo", so one spelling is required and the two cannot differ.
  if (!key.export({ type: "spki", format: "der" }).equals(spki)) {
    throw new PeerError("E_PIN_MISMATCH", "The server's public key is not in DER.");
  }
  const actual = fingerprint(spki);
  if (actual !== hello.server.fingerprint) {
    throw new PeerError(
      "E_PIN_MISMATCH",
      `The server claims ${hello.server.fingerprint} but its key is ${actual}.`,
    );
  }
  if (expectedFingerprint !== undefined && expectedFingerprint !== actual) {
    throw new PeerError(
      "E_PIN_MISMATCH",
      `The server's key is ${actual}, not the expected ${expectedFingerprint}: refusing it.`,
    );
  }
  return { publicKey: key, serverFingerprint: actual };
}

// ---------------------------------------------------------------------------------------------
// One WebSocket connection (§3): text frames of at most 64 KiB, no compression, read in order.

export class Connection {
  #ws;
  #queue = [];
  #wake = null;
  #ended = null;
  /** When the server last showed it is alive (a ping or a message), for the §3 heartbeat rule. */
  lastHeard = Date.now();

  static open(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        perMessageDeflate: false,
        maxPayload: MAX_FRAME_BYTES,
        handshakeTimeout: HANDSHAKE_MS,
      });
      const fail = (err) =>
        reject(new PeerError("E_UNAVAILABLE", `Cannot reach ${url}: ${err.message}`));
      ws.once("error", fail);
      ws.once("open", () => {
        ws.off("error", fail);
        resolve(new Connection(ws));
      });
    });
  }

  constructor(ws) {
    this.#ws = ws;
    ws.on("message", (data, isBinary) => {
      this.lastHeard = Date.now();
      this.#queue.push(isBinary ? { binary: true } : { text: data.toString("utf8") });
      this.#notify();
    });
    ws.on("ping", () => {
      this.lastHeard = Date.now();
    });
    ws.on("error", (err) => {
      this.#end(
        err.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH"
          ? new PeerError("E_FRAME_TOO_LARGE", "The server sent a frame over 65536 bytes.")
          : new PeerError("E_UNAVAILABLE", `Connection error: ${err.message}`),
      );
    });
    ws.on("close", (code) => {
      this.#end(new PeerError("E_UNAVAILABLE", `The server closed the connection (${code}).`));
    });
  }

  #notify() {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  #end(error) {
    this.#ended ??= error;
    this.#notify();
  }

  /** Ends the connection with `error` as the reason every later read reports. */
  abort(error) {
    this.#end(error);
    this.#ws.terminate();
  }

  send(message) {
    this.#ws.send(JSON.stringify(message));
  }

  close() {
    this.#ws.close(1000);
  }

  /** The next frame's text, in order; throws once the connection ended or after `timeoutMs`. */
  async nextText(timeoutMs) {
    for (;;) {
      const item = this.#queue.shift();
      if (item?.binary)
        throw new PeerError("E_MALFORMED_MESSAGE", "The server sent a binary frame.");
      if (item) return item.text;
      if (this.#ended) throw this.#ended;
      let timer;
      const timedOut = await new Promise((resolve) => {
        this.#wake = () => resolve(false);
        if (timeoutMs !== undefined) timer = setTimeout(() => resolve(true), timeoutMs);
      });
      clearTimeout(timer);
      if (timedOut) {
        this.#wake = null;
        throw new PeerError("E_TIMEOUT", "The server did not answer in time.");
      }
    }
  }

  /** The next message, parsed and checked, of one of the `allowed` types (§4.1 phases). */
  async next(allowed, timeoutMs) {
    return parseMessage(await this.nextText(timeoutMs), allowed);
  }
}

/** An `error` from the server, as a local error with its code. */
function serverRefused(error) {
  return new PeerError(error.code, `The server refused: ${error.message}`);
}

async function hello(conn, expectedFingerprint) {
  const message = await conn.next(["hello", "error"], HANDSHAKE_MS);
  if (message.type === "error") throw serverRefused(message);
  return { ...checkServerKey(message, expectedFingerprint), hello: message };
}

// ---------------------------------------------------------------------------------------------
// Secret files: read only when no group or other access (§2's rule for admin.token), written
// 0600 in a 0700 folder.

function readSecretFile(path, what) {
  let mode;
  try {
    mode = statSync(path).mode;
  } catch {
    throw new PeerError("E_INVALID_INPUT", `Cannot read the ${what} file ${path}.`);
  }
  if ((mode & 0o077) !== 0) {
    throw new PeerError(
      "E_INVALID_INPUT",
      `The ${what} file ${path} is readable by others: chmod 600 it.`,
    );
  }
  return readFileSync(path, "utf8").trim();
}

function writeSecretFile(path, data) {
  writeFileSync(path, data, { mode: 0o600, flag: "wx" });
}

/** §2: the admin token file holds 32 bytes as canonical base64url and a newline. */
export function readAdminToken(path) {
  const token = readSecretFile(path, "admin token");
  try {
    return fromB64u(token, "admin token", 32);
  } catch {
    throw new PeerError(
      "E_INVALID_INPUT",
      `The admin token file ${path} does not hold 32 bytes of base64url.`,
    );
  }
}

/** §4, §8: an enrollment token is "dkt_" b64(12) "." b64(32). */
export function readEnrollmentToken(path) {
  const token = readSecretFile(path, "enrollment token");
  const match = /^dkt_([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(token);
  try {
    if (!match) throw new Error();
    fromB64u(match[1], "token id", 12);
    fromB64u(match[2], "token secret", 32);
  } catch {
    throw new PeerError(
      "E_INVALID_INPUT",
      `The file ${path} does not hold an enrollment token (dkt_…).`,
    );
  }
  return token;
}

// ---------------------------------------------------------------------------------------------
// The contributor's own state: an Ed25519 identity, a 64-byte hmac-sha512 generator key (both
// secret, 0600), and peer.json with the pinned server fingerprint and whether it is enrolled.

export class ContributorState {
  constructor(dir) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const identityFile = join(dir, "identity.pem");
    if (!existsSync(identityFile)) {
      const { privateKey } = generateKeyPairSync("ed25519");
      writeSecretFile(identityFile, privateKey.export({ type: "pkcs8", format: "pem" }));
    }
    this.privateKey = createPrivateKey(readSecretFile(identityFile, "identity"));
    const spki = createPublicKey(this.privateKey).export({ type: "spki", format: "der" });
    this.identity = spki.subarray(ED25519_SPKI_PREFIX.length);
    this.contributorId = contributorIdOf(this.identity);
    const generatorFile = join(dir, "generator.key");
    if (!existsSync(generatorFile)) writeSecretFile(generatorFile, `${toB64u(randomBytes(64))}\n`);
    this.generatorKey = fromB64u(
      readSecretFile(generatorFile, "generator key"),
      "generator key",
      64,
    );
    this.peerFile = join(dir, "peer.json");
    this.peer = existsSync(this.peerFile) ? JSON.parse(readFileSync(this.peerFile, "utf8")) : {};
  }

  save() {
    writeFileSync(this.peerFile, `${JSON.stringify(this.peer)}\n`, { mode: 0o600 });
  }
}

// ---------------------------------------------------------------------------------------------
// The contributor (§4 "Conversation"): hello → join → welcome → answer every round.open.

export async function runContributor({ url, fingerprint: given, tokenFile, stateDir, name, emit }) {
  const state = new ContributorState(stateDir);
  const pinned = state.peer.serverFingerprint;
  if (given !== undefined && pinned !== undefined && given !== pinned) {
    throw new PeerError(
      "E_PIN_MISMATCH",
      `--fingerprint ${given} differs from the pinned ${pinned}.`,
    );
  }
  // The token is presented only until the first welcome (§8): the server ignores a token from an
  // identity already enrolled (§4 "Identities and names"), so any welcome, not only
  // enrolled=true, means this identity is enrolled.
  const token = !state.peer.enrolled && tokenFile ? readEnrollmentToken(tokenFile) : undefined;

  const conn = await Connection.open(url);
  try {
    const { publicKey, serverFingerprint, hello: h } = await hello(conn, given ?? pinned);
    const challenge = fromB64u(h.challenge, "challenge", 32);
    const clientChallenge = randomBytes(32);
    const signed = joinData({
      challenge,
      serverFingerprint,
      identity: state.identity,
      token,
      name,
      clientChallenge,
    });
    conn.send({
      type: "join",
      v: VERSION,
      identity: toB64u(state.identity),
      ...(token === undefined ? {} : { token }),
      ...(name === undefined ? {} : { name }),
      clientChallenge: toB64u(clientChallenge),
      signature: toB64u(sign(null, signed, state.privateKey)),
    });

    const welcome = await conn.next(["welcome", "error"], HANDSHAKE_MS);
    if (welcome.type === "error") throw serverRefused(welcome);
    if (welcome.contributorId !== state.contributorId) {
      throw new PeerError("E_BAD_SIGNATURE", "The welcome names another contributor.");
    }
    const proofData = welcomeData({
      challenge,
      clientChallenge,
      serverFingerprint,
      contributorId: state.contributorId,
      name: welcome.name,
      enrolled: welcome.enrolled,
    });
    if (!verifyServerSignature(publicKey, proofData, fromB64u(welcome.proof, "proof", 1, 512))) {
      throw new PeerError(
        "E_BAD_SIGNATURE",
        "The server's welcome proof does not verify with its key: refusing it.",
      );
    }
    // Pinned only now, once the server has proved it holds the key (trust on first use).
    state.peer.serverFingerprint = serverFingerprint;
    state.peer.enrolled = true;
    state.save();
    emit({
      event: "welcome",
      server: serverFingerprint,
      contributorId: state.contributorId,
      name: welcome.name ?? null,
      enrolled: welcome.enrolled,
    });

    await answerRounds(conn, {
      state,
      publicKey,
      serverFingerprint,
      heartbeatMs: h.heartbeatMs,
      emit,
    });
  } finally {
    conn.close();
  }
}

async function answerRounds(conn, { state, publicKey, serverFingerprint, heartbeatMs, emit }) {
  const pool = new EntropyPool();
  const rounds = new ContributorRounds({
    state,
    publicKey,
    serverFingerprint,
    send: (message) => conn.send(message),
    emit,
    sealPhrase: (open) => sealPhrase(open, { state, publicKey, serverFingerprint, pool }),
  });
  // §3: 2.5 heartbeat intervals without a ping or a message mean the server is dead.
  const watchdog = setInterval(() => {
    if (Date.now() - conn.lastHeard > 2.5 * heartbeatMs) {
      conn.abort(new PeerError("E_TIMEOUT", "The server stopped answering heartbeats."));
    }
  }, heartbeatMs / 4);
  try {
    for (;;) {
      let message;
      try {
        message = await conn.next(ContributorRounds.TYPES);
      } catch (err) {
        // §4 "After the handshake": a frame that does not decode, or a message the phase does
        // not take, is ignored and logged; the connection's end is final.
        if (
          !(err instanceof PeerError) ||
          ["E_UNAVAILABLE", "E_TIMEOUT", "E_FRAME_TOO_LARGE"].includes(err.code)
        ) {
          throw err;
        }
        emit({ event: "ignored", code: err.code, message: err.message });
        continue;
      }
      if (message.type === "error" && message.fatal) throw serverRefused(message);
      rounds.handle(message);
    }
  } finally {
    clearInterval(watchdog);
  }
}

/** §6–§7.1: this contributor's phrase for `open`, sealed to the server. */
export function sealPhrase(open, { state, publicKey, serverFingerprint, pool }) {
  const seed = fromB64u(open.seed, "seed", 32);
  const phrase = secretPhrase(state.generatorKey, open.roundId, seed, pool.draw());
  const envelope = seal(
    publicKey,
    phrase,
    contributionAad(open.roundId, state.contributorId, serverFingerprint),
  );
  phrase.fill(0);
  return envelope;
}

/** §4 `commit`: the commitment (raw bytes) and the contributor's signature of it (§5). */
export function commitMessage(roundId, { state, serverFingerprint, commitment }) {
  const signed = commitData(roundId, state.contributorId, serverFingerprint, commitment);
  return {
    type: "commit",
    v: VERSION,
    roundId,
    contributorId: state.contributorId,
    commitment: toB64u(commitment),
    signature: toB64u(sign(null, signed, state.privateKey)),
  };
}

/** §4 `reveal`: the committed envelope, signed with the commit set's hash and the envelope's
 *  commitment, computed from the envelope as sent (§5). */
export function revealMessage(roundId, { state, serverFingerprint, setHash, envelope }) {
  const commitment = contributionCommitment(
    roundId,
    state.contributorId,
    serverFingerprint,
    envelope,
  );
  const signed = revealData(roundId, state.contributorId, serverFingerprint, setHash, commitment);
  return {
    type: "reveal",
    v: VERSION,
    roundId,
    contributorId: state.contributorId,
    setHash: toB64u(setHash),
    envelope,
    signature: toB64u(sign(null, signed, state.privateKey)),
  };
}

/**
 * A contributor's side of §7's rounds, one message at a time (§4 "Conversation", "After the
 * handshake"): it answers a round.open only when signed and invited, and each roundId once; it
 * reveals only against a signed commit set holding its own commitment; it checks its receipt and
 * the signed closing (§7 "Closing"). The set, the receipt and the closing are signed by the round
 * key (§5) that the round.open it answered certified: one for a round it holds no such round.open
 * of is ignored, whoever signed it. `send` gets the messages to send, `emit` one event per step,
 * and `sealPhrase(open)` makes the envelope to commit to.
 *
 * Per round: "committed" (waiting for round.commits), "revealed" (waiting for the receipt),
 * "done" (nothing more to send: receipted, left out, or a signed set it refused). A round keeps
 * the signed set it was shown (`set`), whether or not it revealed against it.
 */
export class ContributorRounds {
  static TYPES = ["round.open", "round.commits", "round.receipt", "round.closed", "error"];
  #answered = new Set();
  /** Each closed round's signed closing, kept to hold a second, different one against it. */
  #closed = new Map();
  #rounds = new Map();
  /** Each answered round's key (§5 "round key"), from its verified round.open; kept after the
   *  round closes, so a second closing can still be checked. */
  #roundKeys = new Map();

  constructor({ state, publicKey, serverFingerprint, send, emit, sealPhrase }) {
    Object.assign(this, { state, publicKey, serverFingerprint, send, emit, sealPhrase });
  }

  /** One message of ContributorRounds.TYPES, already parsed and checked against §4. */
  handle(message) {
    switch (message.type) {
      case "round.open":
        return this.#open(message);
      case "round.commits":
        return this.#commits(message);
      case "round.receipt":
        return this.#receipt(message);
      case "round.closed":
        return this.#close(message);
      case "error":
        return this.emit({
          event: "refused",
          roundId: message.roundId ?? null,
          code: message.code,
          message: message.message,
        });
    }
  }

  #ignore(message, code, why) {
    this.emit({
      event: "ignored",
      type: message.type,
      roundId: message.roundId,
      code,
      message: why,
    });
  }

  #serverSigned(data, signature) {
    return verifyServerSignature(this.publicKey, data, fromB64u(signature, "signature", 1, 512));
  }

  /** Whether `message` (round.commits, round.receipt, round.closed) is signed by its round's key
   *  over `data`; false for a round whose round.open we did not answer. */
  #roundSigned(message, data) {
    if (!this.#roundKeys.has(message.roundId)) return false;
    const signature = fromB64u(message.signature, "signature", 64);
    return verifyRoundSignature(this.#roundKeys.get(message.roundId), data, signature);
  }

  #open(open) {
    if (!this.#serverSigned(roundOpenData(open), open.signature)) {
      return this.#ignore(open, "E_BAD_SIGNATURE", "round.open signature");
    }
    if (!open.invited.includes(this.state.contributorId)) {
      return this.#ignore(open, "E_WRONG_ROUND", "not invited");
    }
    // §4: round.open is bound to no connection, so a recorded one verifies again.
    if (this.#answered.has(open.roundId)) {
      return this.#ignore(open, "E_DUPLICATE_CONTRIBUTION", "again");
    }
    this.#answered.add(open.roundId);
    this.#roundKeys.set(open.roundId, roundPublicKey(fromB64u(open.roundKey, "roundKey", 32)));
    const envelope = this.sealPhrase(open);
    const { contributorId } = this.state;
    const commitment = contributionCommitment(
      open.roundId,
      contributorId,
      this.serverFingerprint,
      envelope,
    );
    this.#rounds.set(open.roundId, { phase: "committed", envelope, commitment });
    this.send(
      commitMessage(open.roundId, {
        state: this.state,
        serverFingerprint: this.serverFingerprint,
        commitment,
      }),
    );
    this.emit({
      event: "committed",
      roundId: open.roundId,
      purpose: open.purpose,
      paramsHash: open.paramsHash,
      invited: open.invited.length,
      commitment: toB64u(commitment),
    });
  }

  #commits(message) {
    const round = this.#rounds.get(message.roundId);
    if (round?.phase !== "committed") {
      return this.#ignore(
        message,
        "E_UNEXPECTED_MESSAGE",
        round ? "the commit set came already" : "no commit of ours in this round",
      );
    }
    const setHash = commitSetHash(message.roundId, this.serverFingerprint, message.commits);
    const signed = commitSetSignatureData(message.roundId, setHash);
    if (!this.#roundSigned(message, signed)) {
      // Not the round key's: a genuine set may still come.
      return this.#ignore(message, "E_BAD_SIGNATURE", "round.commits signature");
    }
    round.set = { setHash, ids: message.commits.map((entry) => entry.contributorId) };
    const own = message.commits.find((entry) => entry.contributorId === this.state.contributorId);
    if (!own) {
      round.phase = "done";
      return this.emit({ event: "left-out", roundId: message.roundId, setHash: toB64u(setHash) });
    }
    if (own.commitment !== toB64u(round.commitment)) {
      // Signed by the round key, with another commitment in our name: reveal nothing, so the round
      // aborts naming us, which is the evidence (§4).
      round.phase = "done";
      return this.#ignore(message, "E_COMMITMENT_MISMATCH", "another commitment in our name");
    }
    Object.assign(round, { phase: "revealed", setHash, revealed: true });
    this.send(
      revealMessage(message.roundId, {
        state: this.state,
        serverFingerprint: this.serverFingerprint,
        setHash,
        envelope: round.envelope,
      }),
    );
    this.emit({
      event: "revealed",
      roundId: message.roundId,
      setHash: toB64u(setHash),
      commits: message.commits.length,
    });
  }

  #receipt(receipt) {
    const round = this.#rounds.get(receipt.roundId);
    if (
      round?.phase !== "revealed" ||
      receipt.contributorId !== this.state.contributorId ||
      receipt.setHash !== toB64u(round.setHash) ||
      receipt.commitment !== toB64u(round.commitment)
    ) {
      return this.#ignore(receipt, "E_UNEXPECTED_MESSAGE", "not a receipt for our reveal");
    }
    const signed = receiptData(
      receipt.roundId,
      receipt.contributorId,
      round.setHash,
      round.commitment,
    );
    if (!this.#roundSigned(receipt, signed)) {
      return this.#ignore(receipt, "E_BAD_SIGNATURE", "round.receipt signature");
    }
    Object.assign(round, { phase: "done", receipt });
    this.emit({ event: "receipt", roundId: receipt.roundId, setHash: receipt.setHash });
  }

  /**
   * §7 "Closing": a round.closed counts only under the round key's signature (one that does not
   * verify is ignored, and the genuine one may still come; one for a round whose round.open we
   * did not answer has no key to verify and is ignored too: spec gap, §7 does not say). Then what this contributor can hold
   * against it, each an error event ("contradicted") with the evidence: the set it names is not
   * the signed set we were shown (and countersigned, when we revealed); it names us missing
   * while we hold the server's receipt. Beyond §7's list, the counts the set implies (§4, §7):
   * a completed round used every committed phrase, so `accepted` is the set's size and we
   * revealed if we are in it; `missing` names only members of the set, and with `accepted`
   * at most the set's size. A second closing of a round is taken no further: the same statement
   * again (round.closed is bound to no connection) is ignored; another one is a contradiction.
   */
  #close(closed) {
    if (!this.#roundKeys.has(closed.roundId)) {
      return this.#ignore(closed, "E_WRONG_ROUND", "no round.open of ours for this round");
    }
    const statement = roundClosedData(closed);
    if (!this.#roundSigned(closed, statement)) {
      return this.#ignore(closed, "E_BAD_SIGNATURE", "round.closed signature");
    }
    const earlier = this.#closed.get(closed.roundId);
    if (earlier) {
      if (earlier.statement.equals(statement)) {
        return this.#ignore(closed, "E_UNEXPECTED_MESSAGE", "the round is closed already");
      }
      return this.emit({
        event: "contradicted",
        roundId: closed.roundId,
        why: "the server signed two different closings of this round",
        closings: [earlier.message, closed],
      });
    }
    this.#closed.set(closed.roundId, { statement, message: closed });
    const round = this.#rounds.get(closed.roundId);
    this.#rounds.delete(closed.roundId);
    const missing = closed.missing ?? [];
    this.emit({
      event: "closed",
      roundId: closed.roundId,
      outcome: closed.outcome,
      accepted: closed.accepted,
      missing,
      setHash: closed.setHash ?? null,
      ...(closed.reason === undefined ? {} : { reason: closed.reason }),
    });
    const contradicted = (why, evidence = {}) =>
      this.emit({ event: "contradicted", roundId: closed.roundId, why, ...evidence });
    const me = this.state.contributorId;
    if (round?.receipt && missing.includes(me)) {
      contradicted("named as missing, but the server signed a receipt for our reveal", {
        receipt: round.receipt,
      });
    }
    const set = round?.set;
    if (!set) return;
    const shown = toB64u(set.setHash);
    if (closed.setHash !== shown) {
      contradicted(
        closed.setHash === undefined
          ? "names no commit set, but the server signed one for this round"
          : "names another commit set than the one the server signed for us",
        { setHash: shown, closedSetHash: closed.setHash ?? null },
      );
      return;
    }
    const size = set.ids.length;
    if (closed.outcome === "completed" && closed.accepted !== size) {
      contradicted(`completed with ${closed.accepted} contributions, not the ${size} committed`);
    }
    if (closed.outcome === "completed" && set.ids.includes(me) && !round.revealed) {
      contradicted("completed, but we are in the commit set and never revealed");
    }
    const strangers = missing.filter((id) => !set.ids.includes(id));
    if (strangers.length > 0) {
      contradicted("names as missing a contributor outside the commit set", { strangers });
    } else if (closed.accepted + missing.length > size) {
      contradicted(
        `${closed.accepted} accepted and ${missing.length} missing of ${size} committed`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The admin client (§4, §5 "admin session"): hello → admin.auth → admin.ready → MACed frames.

/** One direction pair of an admin session: numbered, MACed frames both ways. */
export class AdminChannel {
  #sendKey;
  #receiveKey;
  #sendSeq = 0;
  #receiveSeq = 0;

  constructor(secrets) {
    this.#sendKey = adminSessionKey(secrets, "to-server");
    this.#receiveKey = adminSessionKey(secrets, "to-admin");
  }

  wrap(inner) {
    const body = JSON.stringify(inner);
    const seq = this.#sendSeq++;
    const mac = adminFrameMac(this.#sendKey, "to-server", seq, body);
    return { type: "admin.frame", v: VERSION, seq, body, mac: toB64u(mac) };
  }

  /** The inner message of `frame`: its seq and MAC first, only then its body (§5). */
  unwrap(frame) {
    if (frame.seq !== this.#receiveSeq) {
      throw new PeerError(
        "E_BAD_SIGNATURE",
        `Admin frame ${frame.seq} arrived where ${this.#receiveSeq} was due.`,
      );
    }
    const expected = adminFrameMac(this.#receiveKey, "to-admin", frame.seq, frame.body);
    if (!timingSafeEqual(expected, fromB64u(frame.mac, "mac", 32))) {
      throw new PeerError(
        "E_BAD_SIGNATURE",
        `Admin frame ${frame.seq} has a wrong MAC: the session is not the server's.`,
      );
    }
    this.#receiveSeq++;
    return parseMessage(frame.body, ["admin.round", "admin.status.result", "error"]);
  }
}

export async function runAdmin({ url, fingerprint: expected, tokenFile, generate, params }) {
  const adminToken = readAdminToken(tokenFile);
  const conn = await Connection.open(url);
  try {
    const { publicKey, serverFingerprint, hello: h } = await hello(conn, expected);
    const challenge = fromB64u(h.challenge, "challenge", 32);
    const clientChallenge = randomBytes(32);
    const secrets = { adminToken, challenge, clientChallenge, serverFingerprint };
    const proof = createHmac("sha256", adminToken).update(adminProofData(secrets)).digest();
    conn.send({
      type: "admin.auth",
      v: VERSION,
      clientChallenge: toB64u(clientChallenge),
      proof: toB64u(proof),
    });

    // §4.1: until the session is ready, admin.ready or a bare error (there are no keys yet).
    const ready = await conn.next(["admin.ready", "error"], HANDSHAKE_MS);
    if (ready.type === "error") throw serverRefused(ready);
    if (
      !verifyServerSignature(
        publicKey,
        adminReadyData(secrets),
        fromB64u(ready.proof, "proof", 1, 512),
      )
    ) {
      throw new PeerError(
        "E_BAD_SIGNATURE",
        "The server's admin.ready proof does not verify with its key: refusing it.",
      );
    }
    const channel = new AdminChannel(secrets);

    // One request at a time, each answered by the frame carrying its requestId (§4 allows several
    // outstanding, answered as they complete; this client does not need that).
    const request = async (inner) => {
      conn.send(channel.wrap(inner));
      // Anything but a valid admin.frame from now on ends the session (§4 "Conversation").
      const frame = await conn.next(["admin.frame"], ADMIN_ANSWER_MS);
      const answer = channel.unwrap(frame);
      if (answer.requestId !== inner.requestId) {
        throw new PeerError("E_UNEXPECTED_MESSAGE", "The server answered another request.");
      }
      if (answer.type === "error") throw serverRefused(answer);
      const { type, v, requestId, ...fields } = answer;
      return fields;
    };

    const result = { ok: true, server: serverFingerprint };
    result.status = await request({ type: "admin.status", v: VERSION, requestId: "status-1" });
    if (generate !== undefined) {
      const answer = await request({
        type: "admin.generate",
        v: VERSION,
        requestId: "generate-1",
        purpose: generate,
        params,
      });
      result.record = answer.record;
    }
    return result;
  } finally {
    conn.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The command line.

const USAGE = `usage:
  independent-peer.mjs contributor --url URL [--fingerprint FP] [--token-file F] --state DIR [--name NAME]
  independent-peer.mjs admin --url URL --fingerprint FP --token-file F [--generate PURPOSE] [--param K=V ...]`;

function printLine(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function usage(message) {
  return new PeerError("E_USAGE", `${message}\n${USAGE}`);
}

async function main(argv) {
  const [command, ...rest] = argv;
  let values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        url: { type: "string" },
        fingerprint: { type: "string" },
        "token-file": { type: "string" },
        state: { type: "string" },
        name: { type: "string" },
        generate: { type: "string" },
        param: { type: "string", multiple: true },
      },
    }));
  } catch (err) {
    throw usage(err.message);
  }
  if (!values.url) throw usage("--url is required");
  if (values.fingerprint !== undefined && !FINGERPRINT.test(values.fingerprint)) {
    throw usage("--fingerprint must be SHA256: and 43 base64 characters");
  }
  if (command === "contributor") {
    if (!values.state) throw usage("--state is required");
    if (values.name !== undefined && !NAME.test(values.name))
      throw usage("--name is not a valid name");
    const stop = () => process.exit(0);
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    await runContributor({
      url: values.url,
      fingerprint: values.fingerprint,
      tokenFile: values["token-file"],
      stateDir: values.state,
      name: values.name,
      emit: printLine,
    });
    return;
  }
  if (command === "admin") {
    if (!values.fingerprint) throw usage("--fingerprint is required");
    if (!values["token-file"]) throw usage("--token-file is required (the admin.token)");
    if (values.generate !== undefined && !PURPOSE.test(values.generate))
      throw usage("--generate is not a purpose");
    const params = {};
    for (const pair of values.param ?? []) {
      const eq = pair.indexOf("=");
      if (eq < 1) throw usage(`--param ${pair} is not KEY=VALUE`);
      params[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    printLine(
      await runAdmin({
        url: values.url,
        fingerprint: values.fingerprint,
        tokenFile: values["token-file"],
        generate: values.generate,
        params,
      }),
    );
    return;
  }
  throw usage(`unknown command ${JSON.stringify(command ?? "")}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err) => {
      const code = err instanceof PeerError ? err.code : "E_INTERNAL";
      printLine({ ok: false, error: { code, message: err.message } });
      // The message may quote the server's own text: no control characters reach the terminal.
      process.stderr.write(`${err.message.replace(/\p{Cc}/gu, (c) => (c === "\n" ? c : "?"))}\n`);
      process.exit(code === "E_USAGE" ? 2 : 1);
    },
  );
}
