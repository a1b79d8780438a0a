import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { derivePurpose } from "../../src/derive/index.js";

/** Reproducible round secrets: SHA-512 of a counter, so a failure can be replayed exactly. */
const secretNumber = (i: number) =>
  new Uint8Array(createHash("sha512").update(`otp-uniformity/${i}`).digest());

/** Pearson's χ² over every (position, digit) cell: Σ over positions of Σ (observed − expected)² / expected. */
function chiSquare(codes: readonly string[], digits: number): number {
  const expected = codes.length / 10;
  let total = 0;
  for (let position = 0; position < digits; position++) {
    const counts = new Array<number>(10).fill(0);
    for (const code of codes) counts[code.charCodeAt(position) - 48]! += 1;
    for (const observed of counts) total += (observed - expected) ** 2 / expected;
  }
  return total;
}

/**
 * Upper critical value of χ² with k degrees of freedom at z standard deviations (Wilson–Hilferty).
 * z = 4.75 is a one-sided tail of about 1e-6: an honest generator essentially never trips it, while
 * modulo bias (below) lands far beyond it.
 */
function critical(k: number, z = 4.75): number {
  const a = 2 / (9 * k);
  return k * (1 - a + z * Math.sqrt(a)) ** 3;
}

const SAMPLES = 5000;

test("otp codes are uniform over every digit position (χ² over 5000 secrets)", async () => {
  for (const digits of [6, 10]) {
    const codes: string[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const result = await derivePurpose("otp", secretNumber(i), { digits });
      const code = result.secret.code as string;
      assert.match(code, new RegExp(`^\\d{${digits}}$`));
      codes.push(code);
    }
    const statistic = chiSquare(codes, digits);
    const limit = critical(9 * digits);
    assert.ok(
      statistic < limit,
      `${digits} digits: χ² = ${statistic.toFixed(1)} ≥ ${limit.toFixed(1)}`,
    );
  }
});

test("the uniformity check has the power to catch modulo bias", () => {
  // What a naive generator does: a 20-bit value reduced mod 10^6. Codes below 48576 come up twice
  // as often, so the leading digit 0 has probability ≈ 0.14 instead of 0.10.
  const codes: string[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const v = Buffer.from(secretNumber(i)).readUIntBE(0, 3);
    codes.push(String((v & 0xfffff) % 1_000_000).padStart(6, "0"));
  }
  assert.ok(chiSquare(codes, 6) > critical(54));
});
