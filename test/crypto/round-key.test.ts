/**
 * A round key must be able to bind the server (PROTOCOL §5): the canonical encoding of a point of
 * the prime-order subgroup. Small-order keys (under which trivial forgeries verify) and
 * non-canonical encodings are refused; every key the server makes is accepted.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ed25519 } from "@noble/curves/ed25519.js";
import { generateIdentity, isStrongEd25519Key, rawPublicKey } from "../../src/crypto/signature.js";

const hex = (h: string) => new Uint8Array(Buffer.from(h, "hex"));

test("keys the server makes are strong", () => {
  for (let i = 0; i < 20; i++)
    assert.ok(isStrongEd25519Key(rawPublicKey(generateIdentity().publicKey)));
});

test("small-order points are refused: the all-zero key, the identity, a point of order 8", () => {
  assert.equal(isStrongEd25519Key(new Uint8Array(32)), false, "y = 0: order 4");
  const identity = new Uint8Array(32);
  identity[0] = 1;
  assert.equal(isStrongEd25519Key(identity), false, "the identity");
  // y = -1 (order 2), and a point of order 8 (from the Ed25519 small-order list).
  assert.equal(
    isStrongEd25519Key(hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")),
    false,
  );
  assert.equal(
    isStrongEd25519Key(hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")),
    false,
  );
});

test("a point with a torsion component, a non-canonical encoding and a wrong length are refused", () => {
  const key = rawPublicKey(generateIdentity().publicKey);
  // The canonical key with y + p (the same point, a second encoding): y's top bits set.
  const nonCanonical = hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
  assert.equal(isStrongEd25519Key(nonCanonical), false, "y = p is not canonical");
  assert.equal(isStrongEd25519Key(key.slice(0, 31)), false);
  assert.equal(isStrongEd25519Key(new Uint8Array([...key, 0])), false);
  // A prime-order point plus a point of order 2 is not torsion-free.
  const p = ed25519.Point.fromBytes(key);
  const order2 = ed25519.Point.fromBytes(
    hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
  );
  assert.equal(isStrongEd25519Key(p.add(order2).toBytes()), false);
});
