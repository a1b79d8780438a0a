import assert from "node:assert/strict";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { bech32 } from "@scure/base";
import { HDKey } from "@scure/bip32";
import { mnemonicToSeedWebcrypto } from "@scure/bip39";
import {
  hash160,
  p2wpkhAddress,
  segwitV0Address,
  walletFromMnemonic,
} from "../../src/derive/index.js";
import { readVector } from "../helpers/paths.js";

const bip84 = readVector<{
  mnemonic: string;
  rootnode: string;
  account0: { path: string; xpriv: string };
  addresses: { path: string; pubkey: string; address: string }[];
}>("bip84/bip84_vectors.json");
const bip173 = readVector<{
  valid: { address: string; scriptPubKey: string }[];
  generatorKeyHash: { compressedG: string; hash160: string };
}>("bip173/bip173_segwit_v0.json");

const ZPUB = { private: 0x04b2430c, public: 0x04b24746 };
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("BIP173: witness v0 programs encode to the specification's addresses", () => {
  for (const { address, scriptPubKey } of bip173.valid) {
    const program = new Uint8Array(Buffer.from(scriptPubKey.slice(4), "hex"));
    const hrp = address.toLowerCase().slice(0, 2);
    assert.equal(segwitV0Address(program, hrp), address.toLowerCase());
    const decoded = bech32.decode(address.toLowerCase() as `${string}1${string}`);
    assert.equal(decoded.words[0], 0);
  }
  const g = new Uint8Array(Buffer.from(bip173.generatorKeyHash.compressedG, "hex"));
  assert.ok(secp256k1.Point.fromBytes(g).equals(secp256k1.Point.BASE));
  assert.equal(hex(hash160(g)), bip173.generatorKeyHash.hash160);
  assert.equal(p2wpkhAddress(g), bip173.valid[0]!.address.toLowerCase());
});

test("BIP84: the 'abandon … about' wallet shows the specification's bech32 addresses", async () => {
  const w = await walletFromMnemonic(bip84.mnemonic, { indexes: 2 });
  const shown = w.bitcoin[0]!.addresses;
  assert.deepEqual(shown, [
    { path: bip84.addresses[0]!.path, address: bip84.addresses[0]!.address },
    { path: bip84.addresses[1]!.path, address: bip84.addresses[1]!.address },
  ]);
  // Every vector row, change address included, through the same key-to-address step.
  const seed = await mnemonicToSeedWebcrypto(bip84.mnemonic, "");
  const root = HDKey.fromMasterSeed(seed);
  for (const row of bip84.addresses) {
    const pub = root.derive(row.path).publicKey!;
    assert.equal(hex(pub), row.pubkey);
    assert.equal(p2wpkhAddress(pub), row.address);
  }
});

test("BIP84: the Bitcoin account's zpub is the public half of the specification's account zprv", async () => {
  const w = await walletFromMnemonic(bip84.mnemonic);
  const account = HDKey.fromExtendedKey(bip84.account0.xpriv, ZPUB);
  assert.equal(w.bitcoin[0]!.path, bip84.account0.path);
  assert.equal(w.bitcoin[0]!.zpub, account.publicExtendedKey);
  // The xpub is the same key under the standard version bytes.
  const fromXpub = HDKey.fromExtendedKey(w.bitcoin[0]!.xpub);
  assert.deepEqual(fromXpub.publicKey, account.publicKey);
  assert.deepEqual(fromXpub.chainCode, account.chainCode);
  const seed = await mnemonicToSeedWebcrypto(bip84.mnemonic, "");
  assert.equal(HDKey.fromMasterSeed(seed, ZPUB).privateExtendedKey, bip84.rootnode);
});
