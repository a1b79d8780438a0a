/**
 * The key generation server's long-term RSA-3072 key pair (NIST SP 800-57 Part 1 Table 2: 128-bit
 * security). Made at first start and kept in the data folder as PKCS#8 PEM (0600), encrypted when a
 * passphrase is given with PBES2: scrypt (N = 2^14, r = 8, p = 5) and AES-256-CBC
 * (crypto/pkcs8-scrypt.ts); the public key beside it as SPKI PEM. Later starts load the same key,
 * so the fingerprint contributors pin stays the same. A key encrypted by an older dkeygen (PBES2
 * with PBKDF2, 2,048 iterations: cheap to guess) is re-encrypted with scrypt when it is opened.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from "node:crypto";
import { join } from "node:path";
import { promisify } from "node:util";
import { fingerprintOf, spkiDer } from "../crypto/fingerprint.js";
import {
  encryptPrivateKeyScrypt,
  meetsScryptParams,
  protectionOf,
} from "../crypto/pkcs8-scrypt.js";
import {
  createFileExclusive,
  fileExists,
  readSecretFile,
  writeFileAtomic,
} from "../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../errors.js";

export const SERVER_KEY_FILE = "server-key.pem";
export const SERVER_PUBLIC_KEY_FILE = "server-key.pub.pem";
export const SERVER_KEY_BITS = 3072;

export interface ServerIdentity {
  privateKey: KeyObject;
  publicKey: KeyObject;
  spki: Uint8Array;
  fingerprint: string;
}

const generateRsa = promisify(generateKeyPair);

export function identityFromPrivateKey(privateKey: KeyObject): ServerIdentity {
  const publicKey = createPublicKey(privateKey);
  return {
    privateKey,
    publicKey,
    spki: new Uint8Array(spkiDer(publicKey)),
    fingerprint: fingerprintOf(publicKey),
  };
}

/** Loads the server key from `dataDir`, or makes and saves one. `created` says which happened. */
export async function loadOrCreateServerIdentity(
  dataDir: string,
  passphrase?: string,
): Promise<{ identity: ServerIdentity; created: boolean; reencrypted: boolean }> {
  const keyPath = join(dataDir, SERVER_KEY_FILE);
  if (await fileExists(keyPath)) {
    return { ...(await loadServerIdentity(keyPath, passphrase)), created: false };
  }
  const { privateKey } = await generateRsa("rsa", {
    modulusLength: SERVER_KEY_BITS,
    publicExponent: 65537,
  });
  const pem = passphrase
    ? await encryptPrivateKeyScrypt(privateKey, passphrase)
    : (privateKey.export({ type: "pkcs8", format: "pem" }) as string);
  // Never replaces a key: if another process made one meanwhile, that one is the server's key.
  if (!(await createFileExclusive(keyPath, pem))) {
    return { ...(await loadServerIdentity(keyPath, passphrase)), created: false };
  }
  const identity = identityFromPrivateKey(privateKey);
  await writeFileAtomic(
    join(dataDir, SERVER_PUBLIC_KEY_FILE),
    identity.publicKey.export({ type: "spki", format: "pem" }),
    0o644,
  );
  return { identity, created: true, reencrypted: false };
}

async function loadServerIdentity(
  keyPath: string,
  passphrase?: string,
): Promise<{ identity: ServerIdentity; reencrypted: boolean }> {
  const pem = (await readSecretFile(keyPath)).toString("utf8");
  const encrypted = pem.includes("BEGIN ENCRYPTED PRIVATE KEY");
  if (encrypted && !passphrase) {
    throw new DkeygenError(
      ErrorCodes.KEY_LOCKED,
      `${keyPath} is encrypted; set DKEYGEN_SERVER_PASSPHRASE to its passphrase.`,
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(encrypted ? { key: pem, passphrase } : pem);
  } catch (cause) {
    throw new DkeygenError(
      encrypted ? ErrorCodes.KEY_LOCKED : ErrorCodes.OPERATIONAL,
      encrypted
        ? `${keyPath} could not be decrypted; the passphrase is wrong.`
        : `${keyPath} is not a valid private key.`,
      { cause },
    );
  }
  let reencrypted = false;
  if (encrypted && passphrase && !meetsScryptParams(protectionOf(pem))) {
    // The same key, the same passphrase, a costlier derivation; replaced atomically.
    await writeFileAtomic(keyPath, await encryptPrivateKeyScrypt(privateKey, passphrase));
    reencrypted = true;
  }
  return { identity: identityFromPrivateKey(privateKey), reencrypted };
}
