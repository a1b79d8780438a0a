/**
 * What the two-factor routes share (routes/totp.ts, routes/recovery.ts, routes/keys.ts): an account's enrollment
 * in force, its lock key, and the parameters sealed with its secret. An account of a requester has
 * one enrollment in force, TOTP or HOTP: its newest record of purpose `totp` or `hotp` made for
 * that account. Enrolling again without `replace` is refused (409), so nobody's authenticator stops
 * working by accident; with it, the new enrollment is in force and the old one, with its recovery
 * codes, no longer verifies.
 */
import { DkeygenError, ErrorCodes } from "../../errors.js";
import type { KeyRecord, KeyStore } from "../../store/types.js";

export const TWO_FACTOR_PURPOSES = ["totp", "hotp"] as const;
export type TwoFactorType = (typeof TWO_FACTOR_PURPOSES)[number];

/** The lock key of an account's verifications (TOTP, HOTP and recovery codes share it). */
export const twoFactorLockKey = (requesterId: string, account: string) =>
  `totp\u0000${requesterId}\u0000${account}`;

/** The account's enrollment in force, if any: its newest `totp` or `hotp` record. */
export async function enrollmentInForce(
  store: KeyStore,
  requesterId: string,
  account: string,
): Promise<KeyRecord | undefined> {
  let newest: KeyRecord | undefined;
  for (const purpose of TWO_FACTOR_PURPOSES) {
    // The (owner, subject) index keeps this lookup to the requester's own records for the
    // account: other requesters' OTP claims for the same subject are never read.
    const record = (await store.list({ purpose, owner: requesterId, subject: account }))
      .filter((r) => r.public.account === account)
      .at(-1);
    // Record ids are ULIDs: sorted by creation time.
    if (record && (newest === undefined || record.id > newest.id)) newest = record;
  }
  return newest;
}

/** A TOTP or HOTP record's parameters from its public part: sealed with every delivery of its secret. */
export function enrollmentParameters(pub: Record<string, unknown>) {
  const common = {
    type: pub.type as TwoFactorType,
    issuer: pub.issuer as string,
    account: pub.account as string,
    algorithm: pub.algorithm as string,
    digits: pub.digits as number,
  };
  return pub.type === "hotp"
    ? { ...common, counter: pub.counter as number }
    : { ...common, period: pub.period as number };
}

/** A TOTP record's parameters from its public part, sealed with its secret by a key fetch (routes/keys.ts). */
export function totpParameters(pub: Record<string, unknown>) {
  return {
    issuer: pub.issuer as string,
    account: pub.account as string,
    algorithm: pub.algorithm as string,
    digits: pub.digits as number,
    period: pub.period as number,
  };
}

export function alreadyEnrolled(current: KeyRecord): DkeygenError {
  return new DkeygenError(
    ErrorCodes.ALREADY_ENROLLED,
    `The account already has a ${current.purpose.toUpperCase()} enrollment (record ${current.id}). Enroll again with replace (dkeygen totp enroll --replace) to replace it: its secret and recovery codes then stop working.`,
  );
}

export function enrollmentInProgress(): DkeygenError {
  return new DkeygenError(
    ErrorCodes.ALREADY_ENROLLED,
    "An enrollment of this account is already in progress; wait for it to finish.",
  );
}
