import assert from "node:assert/strict";
import { test } from "node:test";
import { HDKey } from "@scure/bip32";
import { mnemonicToSeedWebcrypto } from "@scure/bip39";
import {
  ethereumAddress,
  isChecksumAddress,
  toChecksumAddress,
  walletFromMnemonic,
} from "../../src/derive/index.js";
import { readVector } from "../helpers/paths.js";

const eip55 = readVector<{ valid: string[] }>("eip55/eip55_vectors.json");
const bip44 = readVector<{ mnemonic: string; path: string; address: string }>(
  "bip44-ethereum/abandon_about.json",
);

test("EIP-55: every specification address is reproduced from its lower-case form", () => {
  for (const address of eip55.valid) {
    assert.equal(toChecksumAddress(address.toLowerCase()), address);
    assert.equal(toChecksumAddress(address.toUpperCase().replace("0X", "0x")), address);
    assert.ok(isChecksumAddress(address));
  }
});

test("EIP-55: a wrong letter case fails the checksum", () => {
  const address = eip55.valid[4]!; // mixed case
  const flipped = `${address.slice(0, 3)}${address[3] === address[3]!.toLowerCase() ? address[3]!.toUpperCase() : address[3]!.toLowerCase()}${address.slice(4)}`;
  assert.ok(!isChecksumAddress(flipped));
  assert.ok(!isChecksumAddress("0x123"));
  assert.throws(() => toChecksumAddress("0xzz"), TypeError);
});

test("BIP44: the 'abandon … about' wallet's first Ethereum address is the one wallets show", async () => {
  const w = await walletFromMnemonic(bip44.mnemonic);
  assert.deepEqual(w.ethereum[0]!.addresses[0], { path: bip44.path, address: bip44.address });
  // The same from the key directly, compressed or not.
  const root = HDKey.fromMasterSeed(await mnemonicToSeedWebcrypto(bip44.mnemonic, ""));
  const pub = root.derive(bip44.path).publicKey!;
  assert.equal(ethereumAddress(pub), bip44.address);
});
