/**
 * The certificate and private key both listeners serve TLS with (`dkeygen server --tls-cert FILE
 * --tls-key FILE`): PEM files as OpenSSL writes them (X.509 certificate, then any intermediate CA
 * certificates; an unencrypted PKCS#8, PKCS#1 or SEC 1 private key). The key file is a secret and
 * is refused when others may read it, like every secret file (src/datadir/files.ts). Each problem
 * is reported at start-up with the file it concerns: unreadable, not a certificate, not a key, or
 * a certificate for another key.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { readSecretFile } from "../datadir/files.js";
import { DkeygenError, ErrorCodes, isDkeygenError } from "../errors.js";
import type { TlsServerOptions } from "../transport/tls.js";

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface TlsCredentials extends TlsServerOptions {
  certFile: string;
  /** The server certificate's subject, names and validity, for the start-up log. */
  subject: string;
  subjectAltName: string | undefined;
  validFrom: Date;
  validTo: Date;
  /** SHA-256 fingerprint of the server certificate, colon-separated hex (as openssl x509 prints). */
  fingerprint256: string;
  /** Overwrites the key's PEM bytes once both listeners hold their own copies (OpenSSL's). */
  wipe(): void;
}

const invalid = (message: string, cause?: unknown) =>
  new DkeygenError(ErrorCodes.INVALID_INPUT, message, cause === undefined ? {} : { cause });

async function readPart(what: string, path: string, secret: boolean): Promise<Buffer> {
  try {
    return secret ? await readSecretFile(path) : await readFile(path);
  } catch (cause) {
    // readSecretFile's own refusal (a key file others may read) already names the file.
    if (isDkeygenError(cause)) throw cause;
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `Cannot read the TLS ${what} file ${path}: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** Loads and checks the TLS certificate chain and key; throws a DkeygenError naming the file. */
export async function loadTlsCredentials(files: TlsFiles): Promise<TlsCredentials> {
  const cert = await readPart("certificate", files.certFile, false);
  const key = await readPart("key", files.keyFile, true);
  try {
    const first = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(
      cert.toString("utf8"),
    )?.[0];
    let certificate: X509Certificate;
    try {
      if (first === undefined) throw new Error("no PEM certificate block");
      certificate = new X509Certificate(first);
    } catch (cause) {
      throw invalid(
        `The TLS certificate file ${files.certFile} does not hold a PEM certificate (-----BEGIN CERTIFICATE-----) that parses.`,
        cause,
      );
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(key);
    } catch (cause) {
      // PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo) or OpenSSL's traditional encrypted PEM.
      const encrypted =
        key.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
        key.includes("Proc-Type: 4,ENCRYPTED");
      throw invalid(
        encrypted
          ? `The TLS key file ${files.keyFile} is encrypted; give it unencrypted (it is protected by its 0600 mode).`
          : `The TLS key file ${files.keyFile} does not hold a PEM private key that parses.`,
        cause,
      );
    }
    if (!certificate.checkPrivateKey(privateKey)) {
      throw invalid(
        `The TLS certificate ${files.certFile} does not match the key ${files.keyFile}: the certificate is for another key.`,
      );
    }
    return {
      cert,
      key,
      certFile: files.certFile,
      subject: certificate.subject.replace(/\n/g, ", "),
      subjectAltName: certificate.subjectAltName,
      validFrom: new Date(certificate.validFrom),
      validTo: new Date(certificate.validTo),
      fingerprint256: certificate.fingerprint256,
      wipe: () => key.fill(0),
    };
  } catch (error) {
    key.fill(0);
    throw error;
  }
}
