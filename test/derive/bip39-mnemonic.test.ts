import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { mnemonicToSeedWebcrypto } from "@scure/bip39";
import { wordlist } from "@scure/bip39/wordlists/english.js";
import {
  derivePurpose,
  mnemonicEntropy,
  walletFromEntropy,
  walletFromMnemonic,
} from "../../src/derive/index.js";
import { isDkeygenError } from "../../src/errors.js";
import { REPO_ROOT, readVector } from "../helpers/paths.js";

type Row = [entropyHex: string, mnemonic: string, seedHex: string, xprv: string];
const { english } = readVector<{ english: Row[] }>("bip39/vectors.json");
const extra = readVector<{
  invalid_checksum: { mnemonic: string }[];
  nfkd_equivalence: {
    mnemonic_forms: { nfkd: string; nfc: string };
    passphrase_forms: { nfkd: string; nfc: string };
    expectedSeedHex: string;
  };
}>("bip39/bip39_extra.json");

const unhex = (h: string) => new Uint8Array(Buffer.from(h, "hex"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("the English word list is BIP39's (2048 words, as in trezor/python-mnemonic)", () => {
  const reference = readFileSync(`${REPO_ROOT}test/vectors/bip39/english.txt`, "utf8")
    .trim()
    .split("\n");
  assert.equal(reference.length, 2048);
  assert.deepEqual([...wordlist], reference);
});

test("all 24 English BIP39 vectors: entropy → mnemonic → seed (passphrase TREZOR) → BIP32 root", async () => {
  assert.equal(english.length, 24);
  for (const [entropyHex, mnemonic, seedHex, xprv] of english) {
    const w = await walletFromEntropy(unhex(entropyHex), { passphrase: "TREZOR", accounts: 0 });
    assert.equal(w.mnemonic, mnemonic);
    assert.equal(w.rootXprv, xprv);
    assert.equal(hex(await mnemonicToSeedWebcrypto(mnemonic, "TREZOR")), seedHex);
    assert.equal(hex(mnemonicEntropy(mnemonic)), entropyHex);
  }
});

test("a mnemonic with a bad checksum is refused", async () => {
  for (const { mnemonic } of extra.invalid_checksum) {
    await assert.rejects(walletFromMnemonic(mnemonic), (e) => isDkeygenError(e, "E_INVALID_INPUT"));
    assert.throws(
      () => mnemonicEntropy(mnemonic),
      (e) => isDkeygenError(e, "E_INVALID_INPUT"),
    );
  }
  await assert.rejects(walletFromMnemonic("abandon abandon abandon"), /BIP39/);
  await assert.rejects(walletFromMnemonic(`${"abandon ".repeat(11)}notaword`), /BIP39/);
});

test("NFC and NFKD spellings of a mnemonic and passphrase give one seed (BIP39 normalises to NFKD)", async () => {
  const { mnemonic_forms: m, passphrase_forms: p, expectedSeedHex } = extra.nfkd_equivalence;
  for (const mnemonic of [m.nfc, m.nfkd]) {
    for (const passphrase of [p.nfc, p.nfkd]) {
      assert.equal(hex(await mnemonicToSeedWebcrypto(mnemonic, passphrase)), expectedSeedHex);
    }
  }
  // Through our own entry point, with an English mnemonic and that passphrase.
  const words = english[0]![1];
  const a = await walletFromMnemonic(words, { passphrase: p.nfc });
  const b = await walletFromMnemonic(words, { passphrase: p.nfkd });
  assert.equal(a.rootXprv, b.rootXprv);
});

test("a derived wallet's mnemonic has 24 words by default and 12 on request, from DRBG entropy", async () => {
  const secret = new Uint8Array(64).fill(0x33);
  const r24 = await derivePurpose("wallet", secret, {});
  const r12 = await derivePurpose("wallet", secret, { words: 12 });
  assert.equal((r24.secret.mnemonic as string).split(" ").length, 24);
  assert.equal((r12.secret.mnemonic as string).split(" ").length, 12);
  assert.equal(mnemonicEntropy(r24.secret.mnemonic as string).length, 32);
  assert.equal(mnemonicEntropy(r12.secret.mnemonic as string).length, 16);
  assert.equal(r24.algorithm, "wallet/v1");
  // Re-importing the mnemonic gives the same root and addresses.
  const again = await walletFromMnemonic(r24.secret.mnemonic as string);
  assert.equal(again.rootXprv, r24.secret.rootXprv);
  assert.equal(again.rootXpub, r24.public.rootXpub);
});

test("a passphrase changes the wallet but not the mnemonic, and stays out of the public part", async () => {
  const secret = new Uint8Array(64).fill(0x44);
  const plain = await derivePurpose("wallet", secret, {});
  const protectedWallet = await derivePurpose("wallet", secret, { passphrase: "correct horse" });
  assert.equal(protectedWallet.secret.mnemonic, plain.secret.mnemonic);
  assert.notEqual(protectedWallet.secret.rootXprv, plain.secret.rootXprv);
  assert.equal(protectedWallet.public.passphrase, true);
  assert.equal(plain.public.passphrase, false);
  assert.equal(protectedWallet.secret.passphrase, "correct horse");
  assert.ok(!JSON.stringify(protectedWallet.public).includes("correct horse"));
  assert.ok(!JSON.stringify(protectedWallet.public).includes("xprv"));
  assert.ok(!JSON.stringify(protectedWallet.public).includes(plain.secret.mnemonic as string));
});

test("more accounts and indexes extend the same wallet", async () => {
  const secret = new Uint8Array(64).fill(0x55);
  const small = await derivePurpose("wallet", secret, {});
  const large = await derivePurpose("wallet", secret, { accounts: 2, indexes: 3 });
  assert.equal(large.secret.mnemonic, small.secret.mnemonic);
  const eth = large.public.ethereum as { path: string; addresses: { path: string }[] }[];
  assert.equal(eth.length, 2);
  assert.deepEqual(
    eth[1]!.addresses.map((a) => a.path),
    ["m/44'/60'/1'/0/0", "m/44'/60'/1'/0/1", "m/44'/60'/1'/0/2"],
  );
  assert.deepEqual((small.public.ethereum as unknown[])[0], {
    ...(eth[0] as object),
    addresses: eth[0]!.addresses.slice(0, 1),
  });
});
