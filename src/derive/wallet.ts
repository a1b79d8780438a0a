/**
 * Purpose `wallet`: a BIP39 mnemonic and the BIP32 wallet it seeds, with the addresses a standard
 * wallet shows when the mnemonic is imported:
 *
 *   entropy   = the first ENT bits of the derivation's HMAC_DRBG, ENT = 32 · words / 3 (128, 160,
 *               192, 224 or 256 bits for the 12, 15, 18, 21 or 24 words BIP39 allows; default 24)
 *   mnemonic  = BIP39(entropy), English word list                               (@scure/bip39)
 *   seed      = PBKDF2-HMAC-SHA512(NFKD(mnemonic), "mnemonic" ‖ NFKD(passphrase), 2048, 64)
 *   root      = BIP32 master key of seed                                        (@scure/bip32)
 *   Ethereum  = m/44'/60'/a'/0/i (BIP44, SLIP-44 coin 60): keccak-256 of the uncompressed public
 *               key, last 20 bytes, EIP-55 mixed-case checksum
 *   Bitcoin   = m/84'/0'/a'/0/i (BIP84): native segwit P2WPKH, witness v0 program
 *               HASH160(compressed public key), bech32 with HRP "bc" (BIP173)
 *
 * Only `words` selects the DRBG stream (personalization LP(label, {"words": n})): the passphrase,
 * accounts and indexes are views of the same mnemonic, so asking for more addresses later, or
 * adding a passphrase, shows the same wallet the mnemonic restores elsewhere.
 *
 * Account keys are published as xpub (the BIP32 version bytes every library reads); the Bitcoin
 * account also as zpub (SLIP-132 version 0x04b24746), which BIP84 wallets expect for native segwit.
 *
 * The passphrase is a secret: it appears only in the secret part (so the stored record is enough
 * to restore the wallet) and as a boolean in the public part. Note that it is also a parameter, so
 * code that records parameters must not publish a wallet's `passphrase` option.
 */
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { ripemd160 } from "@noble/hashes/legacy.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { bech32 } from "@scure/base";
import { HDKey } from "@scure/bip32";
import {
  entropyToMnemonic,
  mnemonicToEntropy,
  mnemonicToSeedWebcrypto,
  validateMnemonic,
} from "@scure/bip39";
import { wordlist as english } from "@scure/bip39/wordlists/english.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { JsonObject } from "../json.js";
import { assertRoundSecret, DeterministicGenerator } from "./drbg.js";
import { checkKnownOptions, intOption, type RawParams, stringOption } from "./params.js";
import type { Derivation, DerivationResult } from "./types.js";

export const WALLET_LABEL = "dkeygen/v1/derive/wallet";
export const MNEMONIC_WORDS = [12, 15, 18, 21, 24] as const;

export interface WalletParams {
  /** Mnemonic length (default 24 words = 256 bits of entropy). */
  words: (typeof MNEMONIC_WORDS)[number];
  /** BIP39 passphrase (default: none). Secret. */
  passphrase: string;
  /** How many accounts are shown, 1 to 10 (default 1): accounts a' = 0' … (accounts − 1)'. */
  accounts: number;
  /** How many receive addresses are shown per account, 1 to 100 (default 1): i = 0 … indexes − 1. */
  indexes: number;
}

export interface WalletAddress {
  path: string;
  address: string;
}

export interface WalletAccount {
  account: number;
  path: string;
  xpub: string;
  /** Bitcoin accounts only: the same key with SLIP-132 zpub version bytes. */
  zpub?: string;
  addresses: WalletAddress[];
}

export interface Wallet {
  mnemonic: string;
  /** The BIP32 root, as xprv and xpub, and its fingerprint (hex, as descriptors write it). */
  rootXprv: string;
  rootXpub: string;
  rootFingerprint: string;
  ethereum: WalletAccount[];
  bitcoin: WalletAccount[];
}

/** SLIP-132 version bytes for BIP84 (P2WPKH) account keys on mainnet. */
const ZPUB_VERSIONS = { private: 0x04b2430c, public: 0x04b24746 };

const HARDENED = 0x80000000;

/** EIP-55: the address's hex digits, a letter upper-cased where keccak-256 of the lower-case hex has a nibble ≥ 8. */
export function toChecksumAddress(address: Uint8Array | string): string {
  const lower =
    typeof address === "string"
      ? address.replace(/^0x/i, "").toLowerCase()
      : Buffer.from(address).toString("hex");
  if (!/^[0-9a-f]{40}$/.test(lower)) throw new TypeError("An Ethereum address is 20 bytes.");
  const hash = keccak_256(new TextEncoder().encode(lower));
  let out = "0x";
  for (let i = 0; i < 40; i++) {
    const nibble = (hash[i >> 1]! >> (i % 2 === 0 ? 4 : 0)) & 0x0f;
    out += nibble >= 8 ? lower[i]!.toUpperCase() : lower[i]!;
  }
  return out;
}

/** True when `address` is 0x + 40 hex digits whose case is its EIP-55 checksum. */
export function isChecksumAddress(address: string): boolean {
  return /^0x[0-9a-fA-F]{40}$/.test(address) && toChecksumAddress(address) === address;
}

/** The Ethereum address of a secp256k1 public key (33 or 65 bytes), EIP-55 encoded. */
export function ethereumAddress(publicKey: Uint8Array): string {
  const uncompressed = secp256k1.Point.fromBytes(publicKey).toBytes(false);
  return toChecksumAddress(keccak_256(uncompressed.subarray(1)).subarray(12));
}

/** HASH160 = RIPEMD-160(SHA-256(x)), Bitcoin's key hash. */
export function hash160(data: Uint8Array): Uint8Array {
  return ripemd160(sha256(data));
}

/** A segwit address (BIP173 bech32, witness version 0) for a 20- or 32-byte witness program. */
export function segwitV0Address(program: Uint8Array, hrp = "bc"): string {
  if (program.length !== 20 && program.length !== 32) {
    throw new TypeError("A witness v0 program is 20 (P2WPKH) or 32 (P2WSH) bytes.");
  }
  return bech32.encode(hrp, [0, ...bech32.toWords(program)]);
}

/** The native segwit P2WPKH address of a compressed secp256k1 public key (BIP141, BIP173). */
export function p2wpkhAddress(compressedPublicKey: Uint8Array, hrp = "bc"): string {
  if (compressedPublicKey.length !== 33) throw new TypeError("P2WPKH needs a compressed key.");
  return segwitV0Address(hash160(compressedPublicKey), hrp);
}

/**
 * Parses an extended key (xprv/xpub), rejecting every malformed key of BIP32 test vector 5 with
 * an E_INVALID_INPUT error.
 */
export function parseExtendedKey(text: string): HDKey {
  try {
    return HDKey.fromExtendedKey(text);
  } catch (cause) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "Not a valid BIP32 extended key.", { cause });
  }
}

function accountAddresses(
  root: HDKey,
  purpose: 44 | 84,
  coin: number,
  account: number,
  indexes: number,
  address: (publicKey: Uint8Array) => string,
): WalletAccount {
  const path = `m/${purpose}'/${coin}'/${account}'`;
  const node = root.derive(path);
  const external = node.deriveChild(0);
  const addresses: WalletAddress[] = [];
  for (let i = 0; i < indexes; i++) {
    addresses.push({
      path: `${path}/0/${i}`,
      address: address(external.deriveChild(i).publicKey!),
    });
  }
  return { account, path, xpub: node.publicExtendedKey, addresses };
}

/** The wallet of a BIP39 mnemonic (checked against the English list and its checksum). */
export async function walletFromMnemonic(
  mnemonic: string,
  options: { passphrase?: string; accounts?: number; indexes?: number } = {},
): Promise<Wallet> {
  const words = mnemonic.normalize("NFKD").trim().split(/\s+/).join(" ");
  if (!validateMnemonic(words, english)) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "Not a valid BIP39 mnemonic (unknown word, wrong length or bad checksum).",
    );
  }
  const accounts = options.accounts ?? 1;
  const indexes = options.indexes ?? 1;
  if (!Number.isInteger(accounts) || accounts < 0 || accounts >= HARDENED) {
    throw new TypeError("accounts must be a whole number ≥ 0");
  }
  if (!Number.isInteger(indexes) || indexes < 0 || indexes >= HARDENED) {
    throw new TypeError("indexes must be a whole number ≥ 0");
  }
  const seed = await mnemonicToSeedWebcrypto(words, options.passphrase ?? "");
  const root = HDKey.fromMasterSeed(seed);
  seed.fill(0);
  const ethereum: WalletAccount[] = [];
  const bitcoin: WalletAccount[] = [];
  for (let a = 0; a < accounts; a++) {
    ethereum.push(accountAddresses(root, 44, 60, a, indexes, ethereumAddress));
    const btc = accountAddresses(root, 84, 0, a, indexes, (pub) => p2wpkhAddress(pub));
    // The same key under SLIP-132 version bytes: re-encode the account's public node.
    const node = root.derive(btc.path);
    btc.zpub = new HDKey({
      versions: ZPUB_VERSIONS,
      depth: node.depth,
      index: node.index,
      parentFingerprint: node.parentFingerprint,
      chainCode: node.chainCode!,
      publicKey: node.publicKey!,
    }).publicExtendedKey;
    bitcoin.push(btc);
  }
  return {
    mnemonic: words,
    rootXprv: root.privateExtendedKey,
    rootXpub: root.publicExtendedKey,
    rootFingerprint: root.fingerprint.toString(16).padStart(8, "0"),
    ethereum,
    bitcoin,
  };
}

/** The wallet whose mnemonic encodes `entropy` (16, 20, 24, 28 or 32 bytes). */
export function walletFromEntropy(
  entropy: Uint8Array,
  options: { passphrase?: string; accounts?: number; indexes?: number } = {},
): Promise<Wallet> {
  return walletFromMnemonic(entropyToMnemonic(entropy, english), options);
}

/** The entropy a valid English mnemonic encodes. */
export function mnemonicEntropy(mnemonic: string): Uint8Array {
  try {
    return mnemonicToEntropy(mnemonic.normalize("NFKD").trim().split(/\s+/).join(" "), english);
  } catch (cause) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "Not a valid BIP39 mnemonic.", { cause });
  }
}

const accountJson = (a: WalletAccount): JsonObject => ({
  account: a.account,
  path: a.path,
  xpub: a.xpub,
  ...(a.zpub === undefined ? {} : { zpub: a.zpub }),
  addresses: a.addresses.map((x) => ({ path: x.path, address: x.address })),
});

export const wallet: Derivation<WalletParams> = {
  purpose: "wallet",
  label: WALLET_LABEL,
  summary:
    "a BIP39 mnemonic (words=12|15|18|21|24, default 24) with its BIP32 root, Ethereum (EIP-55) and Bitcoin (bech32 P2WPKH) addresses (accounts=1, indexes=1, passphrase)",
  parseParams(raw: RawParams): WalletParams {
    checkKnownOptions("wallet", raw, ["words", "passphrase", "accounts", "indexes"]);
    return {
      words: intOption("wallet", raw, "words", {
        default: 24,
        allowed: MNEMONIC_WORDS,
      }) as WalletParams["words"],
      passphrase: stringOption("wallet", raw, "passphrase", {
        default: "",
        maxLength: 1024,
        allowEmpty: true,
        secret: true,
      }),
      accounts: intOption("wallet", raw, "accounts", { default: 1, min: 1, max: 10 }),
      indexes: intOption("wallet", raw, "indexes", { default: 1, min: 1, max: 100 }),
    };
  },
  paramsToJson: (p) => ({
    words: p.words,
    ...(p.passphrase === "" ? {} : { passphrase: p.passphrase }),
    accounts: p.accounts,
    indexes: p.indexes,
  }),
  async derive(secret: Uint8Array, params: WalletParams): Promise<DerivationResult> {
    assertRoundSecret(secret);
    const p = wallet.parseParams(wallet.paramsToJson(params));
    // Only the mnemonic's length selects the stream; see the module header.
    const generator = new DeterministicGenerator(secret, WALLET_LABEL, { words: p.words });
    const entropy = generator.bytes((p.words / 3) * 4);
    const w = await walletFromEntropy(entropy, p);
    entropy.fill(0);
    return {
      purpose: "wallet",
      algorithm: "wallet/v1",
      public: {
        words: p.words,
        passphrase: p.passphrase !== "",
        rootFingerprint: w.rootFingerprint,
        rootXpub: w.rootXpub,
        ethereum: w.ethereum.map(accountJson),
        bitcoin: w.bitcoin.map(accountJson),
      },
      secret: {
        mnemonic: w.mnemonic,
        ...(p.passphrase === "" ? {} : { passphrase: p.passphrase }),
        rootXprv: w.rootXprv,
      },
    };
  },
};
