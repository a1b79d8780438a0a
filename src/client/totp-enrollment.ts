/**
 * A two-factor enrollment as the requesting client receives it (docs/PROTOCOL.md §12.3): the
 * clear answer names the parameters, the sealed payload holds the secret, the otpauth:// URI, the
 * same parameters and the recovery codes. The sealed parameters are the ones used; clear ones that
 * disagree, or an enrollment for another account than asked, mean tampering and are refused.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";

export interface TotpEnrollRequest {
  issuer: string;
  account: string;
  /** "totp" (default) or "hotp". */
  type?: "totp" | "hotp";
  algorithm?: "SHA1" | "SHA256" | "SHA512";
  digits?: 6 | 8;
  /** TOTP only. */
  period?: number;
  /** HOTP only: the first counter (default 0). */
  counter?: number;
  /** Replace the account's enrollment in force; without it, an enrolled account is refused. */
  replace?: boolean;
  /** How many recovery codes to make (0..20; the server's default is 10). */
  recoveryCodes?: number;
}

export interface TotpEnrollmentResult {
  recordId: string;
  type: "totp" | "hotp";
  issuer: string;
  account: string;
  algorithm: string;
  digits: number;
  /** TOTP: the time step in seconds. */
  period?: number;
  /** HOTP: the counter the authenticator starts from. */
  counter?: number;
  /** The enrollment this one replaced, if any. */
  replaced?: string;
  secret: string;
  uri: string;
  /** Single-use recovery codes, "xxxxx-xxxxx"; delivered this once and never again. */
  recoveryCodes: string[];
}

/** The clear part of an enrollment answer. */
export type TotpEnrollmentReply = Omit<TotpEnrollmentResult, "secret" | "uri" | "recoveryCodes"> & {
  recoveryCodes: number;
};

const tampered = (message: string) => new DkeygenError(ErrorCodes.DECRYPTION_FAILED, message);

/** Checks an opened enrollment against its clear answer and the request; returns what to use. */
export function openedEnrollment(
  request: TotpEnrollRequest,
  reply: TotpEnrollmentReply,
  payload: JsonObject,
): TotpEnrollmentResult {
  const fields = ["recordId", "type", "issuer", "account", "algorithm", "digits"] as const;
  const shape = payload.type === "hotp" ? (["counter"] as const) : (["period"] as const);
  for (const field of [...fields, ...shape]) {
    if (reply[field] !== payload[field]) {
      throw tampered(
        `The TOTP enrollment's ${field} does not match its sealed copy; it was not used.`,
      );
    }
  }
  const codes = payload.recoveryCodes;
  if (
    !Array.isArray(codes) ||
    codes.length !== reply.recoveryCodes ||
    !codes.every((c) => typeof c === "string")
  ) {
    throw tampered("The TOTP enrollment's recovery codes do not match their count; not used.");
  }
  if (
    request.account !== payload.account ||
    request.issuer !== payload.issuer ||
    (request.type ?? "totp") !== payload.type
  ) {
    throw tampered(
      "The TOTP enrollment is for another issuer, account or type than asked; it was not used.",
    );
  }
  return {
    recordId: reply.recordId,
    type: payload.type as "totp" | "hotp",
    issuer: String(payload.issuer),
    account: String(payload.account),
    algorithm: String(payload.algorithm),
    digits: Number(payload.digits),
    ...(payload.type === "hotp"
      ? { counter: Number(payload.counter) }
      : { period: Number(payload.period) }),
    ...(reply.replaced === undefined ? {} : { replaced: reply.replaced }),
    secret: String(payload.secret),
    uri: String(payload.uri),
    recoveryCodes: codes as string[],
  };
}
