/**
 * TLS for both listeners and their clients: TLS 1.3 (RFC 8446) preferred, TLS 1.2 (RFC 5246) the
 * floor, Node's (OpenSSL's) cipher suites and groups otherwise. Clients check the server's
 * certificate chain against the system's CAs or, with `ca`, only against the CA certificates given
 * (a private CA), and its name or address against the certificate (RFC 6125 as Node applies it).
 *
 * A handshake that fails is an E_TLS error that says what failed and what to do, so that a client
 * with the wrong CA is told so at once instead of retrying or waiting.
 */
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import type { SecureVersion } from "node:tls";
import { DkeygenError, ErrorCodes } from "../errors.js";

/** The oldest TLS version either side accepts. */
export const MIN_TLS_VERSION: SecureVersion = "TLSv1.2";

/** A TLS handshake must be done within this time, or the server drops the connection. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** A listener's certificate chain and private key (PEM); see src/server/tls-credentials.ts. */
export interface TlsServerOptions {
  /** The server's certificate, then any intermediate CA certificates. */
  cert: Buffer;
  /** Its private key, unencrypted PEM. */
  key: Buffer;
}

/** Options for `https.createServer` (which also takes the http server options). */
export function tlsServerSettings(
  tls: TlsServerOptions,
  handshakeTimeoutMs = TLS_HANDSHAKE_TIMEOUT_MS,
): { cert: Buffer; key: Buffer; minVersion: SecureVersion; handshakeTimeout: number } {
  return {
    cert: tls.cert,
    key: tls.key,
    minVersion: MIN_TLS_VERSION,
    handshakeTimeout: handshakeTimeoutMs,
  };
}

/** Options for a TLS client: `ca` (PEM) replaces the system's CAs when given. */
export function tlsClientSettings(ca?: string): { minVersion: SecureVersion; ca?: string } {
  return ca === undefined ? { minVersion: MIN_TLS_VERSION } : { minVersion: MIN_TLS_VERSION, ca };
}

/**
 * Reads a CA file for `--ca`: one or more PEM certificates (a private CA, or a self-signed server
 * certificate). Anything else in the file is ignored; a file without a certificate that parses is
 * refused.
 */
export async function readCaFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `Cannot read the CA file ${path}: ${(cause as Error).message}`,
      { cause },
    );
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `The CA file ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----).`,
    );
  }
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (cause) {
      throw new DkeygenError(
        ErrorCodes.INVALID_INPUT,
        `The CA file ${path}: certificate ${i + 1} does not parse.`,
        { cause },
      );
    }
  }
  return `${blocks.join("\n")}\n`;
}

/** Whether `host` is a loopback address or name, where plain connections stay on the machine. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (bare === "localhost") return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  if (isIP(bare) === 6) return bare === "::1" || /^::ffff:127\./.test(bare);
  return false;
}

/** OpenSSL's certificate verification results, as Node reports them in `error.code`. */
const CERTIFICATE_ERRORS = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "ERROR_IN_CERT_NOT_BEFORE_FIELD",
  "ERROR_IN_CERT_NOT_AFTER_FIELD",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_CHAIN_TOO_LONG",
  "CERT_REVOKED",
  "INVALID_CA",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "HOSTNAME_MISMATCH",
]);

/** The reason in an OpenSSL error string ("…:SSL routines:ssl3_get_record:wrong version number:…"). */
function opensslReason(message: string): string {
  return /SSL routines:[^:]*:([^:]+)/.exec(message)?.[1]?.trim() ?? message;
}

/**
 * The E_TLS error for a connection to `url` that failed in its TLS handshake, or undefined if
 * `error` is not a TLS failure (a refused or reset connection, a timeout: reasons to retry).
 */
export function tlsFailure(error: unknown, url: string): DkeygenError | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== "string") return undefined;
  const message = (error as Error).message;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return new DkeygenError(
      ErrorCodes.TLS,
      `TLS: the certificate of ${url} is not for that address: ${message}. Connect with a name or address the certificate lists.`,
      { cause: error },
    );
  }
  if (CERTIFICATE_ERRORS.has(code)) {
    return new DkeygenError(
      ErrorCodes.TLS,
      `TLS: ${url} presented a certificate this client does not trust (${code}: ${message}). Give the certificate of the CA that issued it with --ca FILE.`,
      { cause: error },
    );
  }
  if (code === "EPROTO" || code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_")) {
    const reason = opensslReason(message);
    const hint = /wrong version number|packet length too long|unknown protocol/.test(reason)
      ? " (the server does not speak TLS there: is it a plain ws:// or http:// server?)"
      : "";
    return new DkeygenError(ErrorCodes.TLS, `TLS handshake with ${url} failed: ${reason}${hint}.`, {
      cause: error,
    });
  }
  return undefined;
}

/**
 * A plain (ws://, http://) connection that the server reset before answering: what a TLS server
 * does with one. Says so, since the bare "socket hang up" does not.
 */
export function plainToTlsHint(error: unknown, url: string): Error | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code !== "ECONNRESET" || !/^(ws|http):\/\//.test(url)) return undefined;
  const secure = url.startsWith("ws:") ? "wss://" : "https://";
  return new Error(
    `${(error as Error).message} (a TLS server resets plain connections; if it uses TLS, connect with ${secure})`,
    { cause: error },
  );
}
