/**
 * Where requester registrations are kept: the `RequesterStore` interface, and the rules every
 * implementation shares (names, keys, ids, what a new registration holds). Two implementations:
 * requesters.json in the server's data folder (requesters.ts) and tables beside the key store on
 * PostgreSQL (postgres-requester-store.ts), so that a `requester remove` reaches every
 * distribution server on the database. Both pass one compliance suite
 * (test/distribution/requester-store-compliance.ts). The servers' view of a store, which
 * authenticates requests, is `RequesterRegistry` (requesters.ts): one for every store.
 *
 * Records belong to a registration, not a name: each registration has an immutable id made at
 * `requester add` ("rq:" and 16 random bytes base64url; a name cannot hold ":"), which records'
 * `owner` and claims' `requester` hold. `remove` leaves a tombstone {name, id, removedAt}; adding
 * the name again makes a new id that sees nothing of the old one's. `add` with `replace` on a live
 * registration keeps its id: the operator's explicit transfer to a new key.
 */
import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { toBase64url } from "../crypto/base64url.js";
import { fingerprintOf } from "../crypto/fingerprint.js";
import type { RandomSource } from "../crypto/random.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { deriveResponseKey } from "../protocol/answer-auth.js";

export const REQUESTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
/** A registration id made by `requester add`: never a name (names hold no ":"). */
export const REGISTRATION_ID = /^rq:[A-Za-z0-9_-]{22}$/;

/** What is left of a removed registration: its id is never reused, its records stay its own. */
export interface Tombstone {
  name: string;
  id: string;
  removedAt: string;
}

/** A live registration as a store keeps it: what a server needs to authenticate its requests. */
export interface StoredRegistration {
  id: string;
  name: string;
  /** SPKI PEM. */
  publicKey: string;
  fingerprint: string;
  /** SHA-256 of the credential's secret half. */
  credentialHash: Buffer;
  /** K_resp (32 bytes); undefined for a registration from before authenticated answers. */
  responseKey: Buffer | undefined;
  addedAt: string;
}

export interface AddedRequester {
  name: string;
  /** The registration id (kept by --replace of a live registration, else new). */
  id: string;
  fingerprint: string;
  credential: string;
  /** True when --replace kept a live registration's id (and so its records). */
  keptRegistration: boolean;
  /** For a new registration: ids of earlier, removed ones of this name, whose records stay theirs. */
  removedBefore: string[];
}

export interface ListedRequester {
  name: string;
  id: string;
  fingerprint: string;
  addedAt: string;
  /** False for a registration from before authenticated answers: it must be re-registered. */
  responseKey: boolean;
}

export interface AddOptions {
  replace?: boolean;
  random?: RandomSource;
  now?: Date;
}

/** The live registrations of a store, and the version they were read at. */
export interface RegistrationSnapshot {
  version: string;
  registrations: StoredRegistration[];
}

export interface RequesterStore {
  /** Where the registrations are, for messages (no password). */
  readonly where: string;
  /**
   * How often a server asks `version()` (RequesterRegistry.watch): a removal reaches a running
   * server within about this long.
   */
  readonly pollMs: number;
  /**
   * Registers `name` with `publicKeyPem` and returns its credential (shown once). With `replace`, a
   * live registration of that name gets the new key and credential and keeps its id; without, a
   * live name is refused (E_USAGE). A removed name gets a new id.
   */
  add(name: string, publicKeyPem: string, options?: AddOptions): Promise<AddedRequester>;
  /** Removes `name`'s live registration, leaving a tombstone; E_NOT_FOUND when there is none. */
  remove(name: string, options?: { now?: Date }): Promise<{ name: string; id: string }>;
  /** Live registrations in the order they were first made, and tombstones in removal order. */
  list(): Promise<{ requesters: ListedRequester[]; removed: Tombstone[] }>;
  /** A token that changes whenever a registration is added, replaced or removed; cheap to ask. */
  version(): Promise<string>;
  /** Every live registration, with the version it was read at. */
  snapshot(): Promise<RegistrationSnapshot>;
}

export const sha256 = (text: string) => createHash("sha256").update(text).digest();

/** Refuses a name `requester add` would not take (E_USAGE). */
export function checkRequesterName(name: string): void {
  if (typeof name !== "string" || !REQUESTER_NAME.test(name)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "A requester name has letters, digits and . _ @ - (up to 64, starting with a letter or digit).",
    );
  }
}

/** Checks a requester's public key: RSA of at least 3072 bits, given as SPKI PEM. */
export function requesterKeyFromPem(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (cause) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "The public key is not a PEM public key.", {
      cause,
    });
  }
  if (key.asymmetricKeyType !== "rsa" || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 3072) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "A requester's key must be RSA of at least 3072 bits.",
    );
  }
  return key;
}

/** A new registration id, none of `taken`. */
export function newRegistrationId(random: RandomSource, taken: (id: string) => boolean): string {
  let id: string;
  do id = `rq:${toBase64url(random(16))}`;
  while (taken(id));
  return id;
}

export const liveNameTaken = (name: string) =>
  new DkeygenError(
    ErrorCodes.USAGE,
    `A requester named ${name} is already registered (use --replace).`,
  );

export const noSuchRequester = (name: string) =>
  new DkeygenError(ErrorCodes.NOT_FOUND, `No requester named ${name} is registered.`);

/**
 * A registration of `name` under `id` with `key` and a new credential: what a store keeps, and
 * the credential (`dkr_<name>.<secret>`) to show once.
 */
export function makeRegistration(
  id: string,
  name: string,
  key: KeyObject,
  random: RandomSource,
  now: Date,
): { registration: StoredRegistration; credential: string } {
  const secret = toBase64url(random(32));
  return {
    registration: {
      id,
      name,
      publicKey: key.export({ type: "spki", format: "pem" }) as string,
      fingerprint: fingerprintOf(key),
      credentialHash: sha256(secret),
      responseKey: Buffer.from(deriveResponseKey(name, secret)),
      addedAt: now.toISOString(),
    },
    credential: `dkr_${name}.${secret}`,
  };
}
