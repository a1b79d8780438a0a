/**
 * A contributor's own data folder (0700): its Ed25519 identity key (identity.pem, PKCS#8, 0600),
 * the key of its unique secret phrase generator (generator.key, 0600) and its config
 * (config.json: which generator construction it uses). Made at first start, reused after.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { join } from "node:path";
import { fromBase64url, toBase64url } from "../crypto/base64url.js";
import {
  PHRASE_GENERATOR_NAMES,
  type PhraseGenerator,
  phraseGenerator,
} from "../crypto/phrase-generators.js";
import { osRandom, type RandomSource } from "../crypto/random.js";
import { Secret } from "../crypto/secret.js";
import { generateIdentity, rawPublicKey } from "../crypto/signature.js";
import {
  ensureDataDir,
  fileExists,
  readJsonFile,
  readSecretFile,
  writeFileAtomic,
  writeJsonFile,
} from "../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { contributorIdOf } from "../protocol/identity.js";

export const IDENTITY_FILE = "identity.pem";
export const GENERATOR_KEY_FILE = "generator.key";
export const CONFIG_FILE = "config.json";

export interface ContributorConfig {
  generator: string;
  createdAt: string;
}

export interface ContributorState {
  dataDir: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Raw 32-byte Ed25519 public key. */
  identity: Uint8Array;
  contributorId: string;
  generator: PhraseGenerator;
  generatorKey: Secret;
  created: boolean;
}

export interface LoadContributorOptions {
  /** Generator construction for a new contributor; a random one from the registry if not given. */
  generator?: string;
  random?: RandomSource;
}

export async function loadOrCreateContributorState(
  dataDir: string,
  options: LoadContributorOptions = {},
): Promise<ContributorState> {
  const random = options.random ?? osRandom;
  await ensureDataDir(dataDir);
  const identityPath = join(dataDir, IDENTITY_FILE);
  const configPath = join(dataDir, CONFIG_FILE);
  const keyPath = join(dataDir, GENERATOR_KEY_FILE);
  let created = false;

  let privateKey: KeyObject;
  if (await fileExists(identityPath)) {
    privateKey = createPrivateKey((await readSecretFile(identityPath)).toString("utf8"));
    if (privateKey.asymmetricKeyType !== "ed25519") {
      throw new DkeygenError(ErrorCodes.OPERATIONAL, `${identityPath} is not an Ed25519 key.`);
    }
  } else {
    privateKey = generateIdentity().privateKey;
    await writeFileAtomic(identityPath, privateKey.export({ type: "pkcs8", format: "pem" }));
    created = true;
  }

  let config = await readJsonFile<ContributorConfig>(configPath);
  if (!config) {
    const name =
      options.generator ?? PHRASE_GENERATOR_NAMES[random(1)[0]! % PHRASE_GENERATOR_NAMES.length]!;
    phraseGenerator(name); // validates the name
    config = { generator: name, createdAt: new Date().toISOString() };
    await writeFileAtomic(keyPath, toBase64url(random(phraseGenerator(name).keyBytes)));
    await writeJsonFile(configPath, config, 0o644);
    created = true;
  } else if (options.generator !== undefined && options.generator !== config.generator) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      `This contributor already uses the ${config.generator} generator (${configPath}); ` +
        "a generator is chosen once, when the data folder is made.",
    );
  }
  const generator = phraseGenerator(config.generator);
  const generatorKey = new Secret(
    fromBase64url(
      (await readSecretFile(keyPath)).toString("utf8").trim(),
      GENERATOR_KEY_FILE,
      generator.keyBytes,
    ),
  );
  const publicKey = createPublicKey(privateKey);
  const identity = rawPublicKey(publicKey);
  return {
    dataDir,
    privateKey,
    publicKey,
    identity,
    contributorId: contributorIdOf(identity),
    generator,
    generatorKey,
    created,
  };
}
