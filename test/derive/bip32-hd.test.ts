import assert from "node:assert/strict";
import { test } from "node:test";
import { HDKey } from "@scure/bip32";
import { parseExtendedKey } from "../../src/derive/index.js";
import { isDkeygenError } from "../../src/errors.js";
import { readVector } from "../helpers/paths.js";

interface Bip32Vectors {
  vectors: {
    id: number;
    seedHex: string;
    chains: { path: string; xpub: string; xprv: string }[];
  }[];
  invalid: { key: string; reason: string }[];
}
const data = readVector<Bip32Vectors>("bip32/bip32_vectors.json");

test("BIP32 test vectors 1-4: every chain's xprv and xpub", () => {
  let chains = 0;
  for (const v of data.vectors) {
    const master = HDKey.fromMasterSeed(new Uint8Array(Buffer.from(v.seedHex, "hex")));
    for (const c of v.chains) {
      const node = master.derive(c.path.replace(/H/g, "'"));
      assert.equal(node.privateExtendedKey, c.xprv, `vector ${v.id} ${c.path}`);
      assert.equal(node.publicExtendedKey, c.xpub, `vector ${v.id} ${c.path}`);
      // Both forms parse back to the same key.
      assert.equal(parseExtendedKey(c.xprv).publicExtendedKey, c.xpub);
      assert.equal(parseExtendedKey(c.xpub).publicExtendedKey, c.xpub);
      chains++;
    }
  }
  assert.equal(data.vectors.length, 4);
  assert.equal(chains, 17);
});

test("BIP32 test vector 5: all 16 invalid extended keys are refused with E_INVALID_INPUT", () => {
  assert.equal(data.invalid.length, 16);
  for (const { key, reason } of data.invalid) {
    assert.throws(
      () => parseExtendedKey(key),
      (e) => isDkeygenError(e, "E_INVALID_INPUT"),
      reason,
    );
  }
});
