/**
 * Output script descriptor checksums, BIP380 §"Checksum": a BCH code over the descriptor's
 * characters, 8 characters from the bech32 alphabet appended after '#'. Written here from the
 * BIP's reference code because no maintained JavaScript library of ours computes it; it is a
 * 40-bit polynomial reduction, checked against BIP380's test vectors.
 *
 * Also the multisig witness script of BIP383 `multi()`/`sortedmulti()`:
 *   OP_k <key_1> ... <key_n> OP_n OP_CHECKMULTISIG   (keys sorted bytewise for sortedmulti)
 */

const INPUT_CHARSET =
  "0123456789()[],'/*abcdefgh@:$%{}" +
  "IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~" +
  'ijklmnopqrstuvwxyzABCDEFGH`#"\\ ';
const CHECKSUM_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATOR = [0xf5dee51989n, 0xa9fdca3312n, 0x1bab10e32dn, 0x3706b1677an, 0x644d626ffdn];

function polymod(symbols: readonly number[]): bigint {
  let chk = 1n;
  for (const value of symbols) {
    const top = chk >> 35n;
    chk = ((chk & 0x7ffffffffn) << 5n) ^ BigInt(value);
    for (let i = 0; i < 5; i++) if ((top >> BigInt(i)) & 1n) chk ^= GENERATOR[i]!;
  }
  return chk;
}

/** BIP380 descsum_expand: each character's position in its group, and every 3 groups as one symbol. */
function expand(descriptor: string): number[] {
  const symbols: number[] = [];
  let groups: number[] = [];
  for (const c of descriptor) {
    const v = INPUT_CHARSET.indexOf(c);
    if (v < 0) throw new TypeError(`descriptor: character ${JSON.stringify(c)} is not allowed`);
    symbols.push(v & 31);
    groups.push(v >> 5);
    if (groups.length === 3) {
      symbols.push(groups[0]! * 9 + groups[1]! * 3 + groups[2]!);
      groups = [];
    }
  }
  if (groups.length === 1) symbols.push(groups[0]!);
  else if (groups.length === 2) symbols.push(groups[0]! * 3 + groups[1]!);
  return symbols;
}

/** The 8-character BIP380 checksum of a descriptor (given without '#'). */
export function descriptorChecksum(descriptor: string): string {
  const checksum = polymod([...expand(descriptor), 0, 0, 0, 0, 0, 0, 0, 0]) ^ 1n;
  let out = "";
  for (let i = 0; i < 8; i++)
    out += CHECKSUM_CHARSET[Number((checksum >> BigInt(5 * (7 - i))) & 31n)];
  return out;
}

/** `descriptor#checksum`. */
export function withDescriptorChecksum(descriptor: string): string {
  return `${descriptor}#${descriptorChecksum(descriptor)}`;
}

/** BIP380 descsum_check: true when `text` is SCRIPT#CHECKSUM with a correct checksum. */
export function isDescriptorChecksumValid(text: string): boolean {
  if (text.length < 9 || text[text.length - 9] !== "#") return false;
  const checksum = text.slice(-8);
  if (![...checksum].every((c) => CHECKSUM_CHARSET.includes(c))) return false;
  try {
    const symbols = [
      ...expand(text.slice(0, -9)),
      ...[...checksum].map((c) => CHECKSUM_CHARSET.indexOf(c)),
    ];
    return polymod(symbols) === 1n;
  } catch {
    return false;
  }
}

const OP_CHECKMULTISIG = 0xae;

/** A small number in a script: OP_1..OP_16, or a one-byte push for 17..20 (BIP383). */
function pushNumber(k: number): number[] {
  return k <= 16 ? [0x50 + k] : [0x01, k];
}

/** Bytewise lexicographic order, as sortedmulti() sorts keys. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * The BIP383 multisig script for threshold k over `publicKeys` (33- or 65-byte SEC1 keys; P2WSH
 * wallets use only the 33-byte form), in the given order or sorted (sortedmulti).
 */
export function multisigScript(
  k: number,
  publicKeys: readonly Uint8Array[],
  options: { sorted: boolean },
): Uint8Array {
  const n = publicKeys.length;
  if (!Number.isInteger(k) || k < 1 || k > n || n > 20) {
    throw new TypeError("multisigScript: need 1 ≤ k ≤ n ≤ 20");
  }
  const keys = options.sorted ? [...publicKeys].sort(compareBytes) : publicKeys;
  const out: number[] = pushNumber(k);
  for (const key of keys) {
    if (key.length !== 33 && key.length !== 65) throw new TypeError("multisigScript: bad key");
    out.push(key.length, ...key);
  }
  out.push(...pushNumber(n), OP_CHECKMULTISIG);
  return new Uint8Array(out);
}
