/**
 * A requesting client's data folder (0700): its RSA key pair (requester.pem, PKCS#8, 0600; and
 * requester.pub.pem, SPKI, for the admin to register), its credential (credential, 0600), where
 * its distribution server is (requester.json), and the CA certificate(s) that server's TLS
 * certificate must chain to, when it has a private CA (server-ca.pem, given once with --ca).
 */
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { fingerprintOf } from "../crypto/fingerprint.js";
import { Secret } from "../crypto/secret.js";
import {
  ensureDataDir,
  fileExists,
  readJsonFile,
  readSecretFile,
  writeFileAtomic,
  writeJsonFile,
} from "../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { readCaFile } from "../transport/tls.js";

export const REQUESTER_KEY_FILE = "requester.pem";
export const REQUESTER_PUBLIC_KEY_FILE = "requester.pub.pem";
export const CREDENTIAL_FILE = "credential";
export const REQUESTER_CONFIG_FILE = "requester.json";
export const SERVER_CA_FILE = "server-ca.pem";
export const CREDENTIAL_PATTERN = /^dkr_[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\.[A-Za-z0-9_-]{43}$/;

const generateRsa = promisify(generateKeyPair);

export interface RequesterConfig {
  /** The distribution server's base URL, e.g. http://127.0.0.1:7421 */
  server?: string;
}

export interface RequesterKeys {
  privateKey: KeyObject;
  publicKey: KeyObject;
  fingerprint: string;
  publicKeyPath: string;
  created: boolean;
}

/** Makes (first time) or loads the requester's RSA key pair. */
export async function loadOrCreateRequesterKeys(
  dataDir: string,
  bits = 3072,
): Promise<RequesterKeys> {
  await ensureDataDir(dataDir);
  const keyPath = join(dataDir, REQUESTER_KEY_FILE);
  const publicKeyPath = join(dataDir, REQUESTER_PUBLIC_KEY_FILE);
  let privateKey: KeyObject;
  let created = false;
  if (await fileExists(keyPath)) {
    privateKey = createPrivateKey((await readSecretFile(keyPath)).toString("utf8"));
  } else {
    if (bits !== 3072 && bits !== 4096) {
      throw new DkeygenError(ErrorCodes.USAGE, "A requester key is RSA-3072 or RSA-4096.");
    }
    ({ privateKey } = await generateRsa("rsa", { modulusLength: bits, publicExponent: 65537 }));
    await writeFileAtomic(keyPath, privateKey.export({ type: "pkcs8", format: "pem" }));
    created = true;
  }
  const publicKey = createPublicKey(privateKey);
  if (created || !(await fileExists(publicKeyPath))) {
    await writeFileAtomic(publicKeyPath, publicKey.export({ type: "spki", format: "pem" }), 0o644);
  }
  return { privateKey, publicKey, fingerprint: fingerprintOf(publicKey), publicKeyPath, created };
}

export async function readRequesterConfig(dataDir: string): Promise<RequesterConfig> {
  return (await readJsonFile<RequesterConfig>(join(dataDir, REQUESTER_CONFIG_FILE))) ?? {};
}

export async function writeRequesterConfig(
  dataDir: string,
  config: RequesterConfig,
): Promise<void> {
  await ensureDataDir(dataDir);
  await writeJsonFile(join(dataDir, REQUESTER_CONFIG_FILE), config, 0o644);
}

/** Keeps the CA certificate(s) (PEM, public) the distribution server's certificate chains to. */
export async function saveServerCa(dataDir: string, pem: string): Promise<string> {
  await ensureDataDir(dataDir);
  const path = join(dataDir, SERVER_CA_FILE);
  await writeFileAtomic(path, pem, 0o644);
  return path;
}

/** The stored CA certificate(s), if `--ca` was given at init or login. */
export async function loadServerCa(dataDir: string): Promise<string | undefined> {
  const path = join(dataDir, SERVER_CA_FILE);
  return (await fileExists(path)) ? readCaFile(path) : undefined;
}

export async function saveCredential(dataDir: string, credential: string): Promise<void> {
  if (!CREDENTIAL_PATTERN.test(credential)) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "That is not a requester credential (dkr_<name>.<secret>).",
    );
  }
  await ensureDataDir(dataDir);
  await writeFileAtomic(join(dataDir, CREDENTIAL_FILE), `${credential}\n`);
}

/** The credential from DKEYGEN_REQUESTER_CREDENTIAL or the data folder. */
export async function loadCredential(dataDir: string): Promise<Secret> {
  let text = process.env.DKEYGEN_REQUESTER_CREDENTIAL;
  if (text === undefined) {
    const path = join(dataDir, CREDENTIAL_FILE);
    if (!(await fileExists(path))) {
      throw new DkeygenError(
        ErrorCodes.UNAUTHORIZED,
        `No credential in ${dataDir}; ask an admin for one (dkeygen requester add) and store it with: dkeygen requester login`,
      );
    }
    text = (await readSecretFile(path)).toString("utf8");
  }
  const credential = text.trim();
  if (!CREDENTIAL_PATTERN.test(credential)) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "The stored credential is not in the dkr_<name>.<secret> form.",
    );
  }
  return new Secret(new Uint8Array(Buffer.from(credential, "utf8")));
}
