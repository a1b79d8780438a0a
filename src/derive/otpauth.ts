/**
 * `otpauth://` URIs in Google Authenticator's Key Uri Format
 * (https://github.com/google/google-authenticator/wiki/Key-Uri-Format), the form authenticator apps
 * scan from a QR code:
 *
 *   otpauth://TYPE/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
 *
 * TYPE is totp or hotp; hotp carries counter= instead of period=. The secret is base32 (RFC 4648 §6)
 * without padding. Label parts and the issuer value are percent-encoded as RFC 3986 unreserved
 * characters only (so a space is %20, never +). The issuer appears both as the label prefix and as
 * the issuer parameter, as the format recommends for apps that read only one of them. Every
 * parameter is written explicitly, defaults included, so no app has to guess.
 *
 * `parseOtpauthUri` is strict: it refuses unknown or repeated parameters, bad base32, an issuer
 * prefix that disagrees with the issuer parameter, and values outside what apps support.
 */
import { base32, base32nopad } from "@scure/base";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { OtpAlgorithm } from "./hotp.js";
import { isWellFormedText } from "./params.js";

export type OtpType = "totp" | "hotp";

export interface OtpauthKey {
  type: OtpType;
  secret: Uint8Array;
  account: string;
  /** The provider or service; strongly recommended by the format. */
  issuer?: string;
  /** Default SHA1. */
  algorithm?: OtpAlgorithm;
  /** 6 or 8 (default 6). */
  digits?: number;
  /** TOTP time step in seconds (default 30). */
  period?: number;
  /** HOTP initial counter; required for hotp. */
  counter?: number;
}

/** What `parseOtpauthUri` returns: every field explicit. */
export interface ParsedOtpauth {
  type: OtpType;
  secret: Uint8Array;
  account: string;
  issuer: string | undefined;
  algorithm: OtpAlgorithm;
  digits: number;
  /** Present for totp. */
  period?: number;
  /** Present for hotp. */
  counter?: number;
}

const ALGORITHMS: readonly OtpAlgorithm[] = ["SHA1", "SHA256", "SHA512"];

/** RFC 4648 base32 without padding, upper case. */
export function toBase32(bytes: Uint8Array): string {
  return base32nopad.encode(bytes);
}

/**
 * Decodes base32 as authenticator apps accept it: either case, padding optional, no spaces.
 * `field` names the input in the error.
 */
export function fromBase32(text: string, field = "secret"): Uint8Array {
  const upper = text.toUpperCase();
  try {
    if (!/^[A-Z2-7]+=*$/.test(upper)) throw new Error("alphabet");
    const bytes = upper.includes("=") ? base32.decode(upper) : base32nopad.decode(upper);
    if (bytes.length === 0) throw new Error("empty");
    return bytes;
  } catch (cause) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, `${field} is not valid base32 (RFC 4648).`, {
      cause,
    });
  }
}

/** RFC 3986 percent-encoding of everything but the unreserved characters A-Z a-z 0-9 - . _ ~. */
function encodeStrict(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

const invalid = (message: string) =>
  new DkeygenError(ErrorCodes.INVALID_INPUT, `Invalid otpauth URI: ${message}`);

function checkLabelPart(value: string, name: string): void {
  if (value.length === 0 || value.includes(":") || /\p{Cc}/u.test(value)) {
    throw new TypeError(`otpauthUri: ${name} must be non-empty text without colons`);
  }
  // encodeURIComponent throws a URIError on an unpaired surrogate; say what is wrong instead.
  if (!isWellFormedText(value)) {
    throw new TypeError(`otpauthUri: ${name} must be well-formed Unicode (no unpaired surrogate)`);
  }
}

/** Builds the URI for a key; see the module header for the exact form. */
export function otpauthUri(key: OtpauthKey): string {
  const algorithm = key.algorithm ?? "SHA1";
  const digits = key.digits ?? 6;
  if (key.type !== "totp" && key.type !== "hotp")
    throw new TypeError("otpauthUri: type must be totp or hotp");
  if (!(key.secret instanceof Uint8Array) || key.secret.length === 0) {
    throw new TypeError("otpauthUri: secret must be a non-empty Uint8Array");
  }
  checkLabelPart(key.account, "account");
  if (key.issuer !== undefined) checkLabelPart(key.issuer, "issuer");
  if (!ALGORITHMS.includes(algorithm)) throw new TypeError("otpauthUri: unknown algorithm");
  if (digits !== 6 && digits !== 8) throw new TypeError("otpauthUri: digits must be 6 or 8");

  const label =
    key.issuer === undefined
      ? encodeStrict(key.account)
      : `${encodeStrict(key.issuer)}:${encodeStrict(key.account)}`;
  const query = [`secret=${toBase32(key.secret)}`];
  if (key.issuer !== undefined) query.push(`issuer=${encodeStrict(key.issuer)}`);
  query.push(`algorithm=${algorithm}`, `digits=${digits}`);
  if (key.type === "totp") {
    const period = key.period ?? 30;
    if (!Number.isSafeInteger(period) || period < 1) throw new TypeError("otpauthUri: bad period");
    query.push(`period=${period}`);
  } else {
    const counter = key.counter;
    if (counter === undefined || !Number.isSafeInteger(counter) || counter < 0) {
      throw new TypeError("otpauthUri: hotp needs a counter ≥ 0");
    }
    query.push(`counter=${counter}`);
  }
  return `otpauth://${key.type}/${label}?${query.join("&")}`;
}

function decodeComponent(text: string, what: string, plusIsSpace: boolean): string {
  try {
    return decodeURIComponent(plusIsSpace ? text.replace(/\+/g, " ") : text);
  } catch {
    throw invalid(`${what} is not valid percent-encoding.`);
  }
}

const DECIMAL = /^\d{1,15}$/;

/**
 * Parses an `otpauth://` URI strictly (see the module header). In parameter values `+` is read as a
 * space, as form encoders write it; `otpauthUri` never writes `+` for a space.
 */
export function parseOtpauthUri(uri: string): ParsedOtpauth {
  if (typeof uri !== "string" || uri.length > 4096)
    throw invalid("not a string of at most 4096 UTF-16 code units.");
  const match = /^otpauth:\/\/([A-Za-z]+)\/([^?#]*)\?([^#]*)$/i.exec(uri);
  if (!match) throw invalid("expected otpauth://TYPE/LABEL?PARAMETERS.");
  const type = match[1]!.toLowerCase();
  if (type !== "totp" && type !== "hotp")
    throw invalid(`type must be totp or hotp, got "${match[1]}".`);

  const label = decodeComponent(match[2]!, "the label", false);
  const colon = label.indexOf(":");
  if (colon !== label.lastIndexOf(":")) throw invalid("the label holds more than one colon.");
  const labelIssuer = colon < 0 ? undefined : label.slice(0, colon);
  // The format allows spaces (%20) between the colon and the account name.
  const account = colon < 0 ? label : label.slice(colon + 1).replace(/^ +/, "");
  if (account.length === 0) throw invalid("the account name is empty.");
  if (labelIssuer !== undefined && labelIssuer.length === 0)
    throw invalid("the label's issuer is empty.");

  const params = new Map<string, string>();
  for (const pair of match[3]!.split("&")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw invalid(`parameter "${pair.slice(0, 20)}" is not key=value.`);
    const name = pair.slice(0, eq);
    if (!["secret", "issuer", "algorithm", "digits", "period", "counter"].includes(name)) {
      throw invalid(`unknown parameter "${name.slice(0, 20)}".`);
    }
    if (params.has(name)) throw invalid(`parameter "${name}" appears twice.`);
    params.set(name, decodeComponent(pair.slice(eq + 1), `parameter ${name}`, true));
  }

  const secretText = params.get("secret");
  if (secretText === undefined) throw invalid("the secret parameter is missing.");
  const secret = fromBase32(secretText, "The otpauth secret");

  const issuerParam = params.get("issuer");
  if (issuerParam !== undefined && (issuerParam.length === 0 || issuerParam.includes(":"))) {
    throw invalid("the issuer parameter must be non-empty and without colons.");
  }
  if (issuerParam !== undefined && labelIssuer !== undefined && issuerParam !== labelIssuer) {
    throw invalid("the issuer parameter and the label's issuer differ.");
  }

  const algorithmText = (params.get("algorithm") ?? "SHA1").toUpperCase();
  const algorithm = ALGORITHMS.find((a) => a === algorithmText);
  if (algorithm === undefined) throw invalid("algorithm must be SHA1, SHA256 or SHA512.");

  const digitsText = params.get("digits") ?? "6";
  if (digitsText !== "6" && digitsText !== "8") throw invalid("digits must be 6 or 8.");

  const result: ParsedOtpauth = {
    type,
    secret,
    account,
    issuer: issuerParam ?? labelIssuer,
    algorithm,
    digits: Number(digitsText),
  };
  if (type === "totp") {
    if (params.has("counter")) throw invalid("a totp URI has no counter.");
    const periodText = params.get("period") ?? "30";
    if (!DECIMAL.test(periodText) || Number(periodText) < 1)
      throw invalid("period must be a whole number ≥ 1.");
    result.period = Number(periodText);
  } else {
    if (params.has("period")) throw invalid("an hotp URI has no period.");
    const counterText = params.get("counter");
    if (counterText === undefined) throw invalid("an hotp URI needs a counter.");
    if (!DECIMAL.test(counterText)) throw invalid("counter must be a whole number ≥ 0.");
    result.counter = Number(counterText);
  }
  return result;
}
