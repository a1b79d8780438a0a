/**
 * A set of record ids that costs about 20–40 bytes an id instead of a `Set<string>`'s ≈ 125:
 * the compaction thread's set of ids retired before the cutoff (compaction.ts), which under a
 * sustained OTP load holds every OTP of the last few minutes (a million at 5,000 a second) and
 * was most of the memory a compaction added to the process.
 *
 * A canonical ULID (record-id.ts: 26 Crockford base32 characters, the first 0–7) is exactly 128
 * bits, kept as four 32-bit words in an open-addressing table (linear probing, at most half
 * full, doubled when it gets there). Any other string (a hand-written file may use other ids)
 * goes to a plain Set beside it, so the answers are a Set's for every string.
 */
import { CROCKFORD, ULID_LENGTH } from "./record-id.js";

/** Crockford base32 value of each ASCII code, or 255 (not a canonical ULID character). */
const VALUE = new Uint8Array(128).fill(255);
for (const [i, char] of [...CROCKFORD].entries()) {
  VALUE[char.charCodeAt(0)] = i;
}

const INITIAL_SLOTS = 1 << 10;

/** Whether the slot at word `at` is empty (all four words zero). */
function empty(table: Uint32Array, at: number): boolean {
  return (table[at]! | table[at + 1]! | table[at + 2]! | table[at + 3]!) === 0;
}

export class IdSet {
  /** Four words a slot; all four zero is an empty slot (the all-zero id is `#zero`). */
  #table = new Uint32Array(INITIAL_SLOTS * 4);
  #slots = INITIAL_SLOTS;
  #packed = 0;
  #zero = false;
  readonly #others = new Set<string>();
  /** The id being added or looked up, packed. */
  readonly #key = new Uint32Array(4);

  /** The packed table's bytes (the other ids' Set aside). */
  get bytes(): number {
    return this.#table.byteLength;
  }

  get size(): number {
    return this.#packed + (this.#zero ? 1 : 0) + this.#others.size;
  }

  add(id: string): this {
    if (!this.#pack(id)) {
      this.#others.add(id);
      return this;
    }
    const key = this.#key;
    if ((key[0]! | key[1]! | key[2]! | key[3]!) === 0) {
      this.#zero = true;
      return this;
    }
    if (this.#find(this.#table, this.#slots, key) >= 0) return this;
    if (2 * (this.#packed + 1) > this.#slots) this.#grow();
    this.#insert(this.#table, this.#slots, key);
    this.#packed++;
    return this;
  }

  has(id: string): boolean {
    if (!this.#pack(id)) return this.#others.has(id);
    const key = this.#key;
    if ((key[0]! | key[1]! | key[2]! | key[3]!) === 0) return this.#zero;
    return this.#find(this.#table, this.#slots, key) >= 0;
  }

  /** Packs a canonical ULID's 128 bits into `#key`; false for any other string. */
  #pack(id: string): boolean {
    if (id.length !== ULID_LENGTH) return false;
    const key = this.#key;
    // 26 characters × 5 bits = 130 bits; the first character (0–7) carries 3 of them.
    let word = 0;
    let bits = 0;
    let at = 0;
    for (let i = 0; i < ULID_LENGTH; i++) {
      const code = id.charCodeAt(i);
      const value = code < 128 ? VALUE[code]! : 255;
      if (value === 255 || (i === 0 && value > 7)) return false;
      const width = i === 0 ? 3 : 5;
      // Shift in `width` bits; a 32-bit word is complete every time 32 bits are in.
      const room = 32 - bits;
      if (width <= room) {
        word = (word << width) | value;
        bits += width;
      } else {
        const rest = width - room;
        key[at++] = ((word << room) | (value >>> rest)) >>> 0;
        word = value & ((1 << rest) - 1);
        bits = rest;
      }
      if (bits === 32) {
        key[at++] = word >>> 0;
        word = 0;
        bits = 0;
      }
    }
    return true;
  }

  /** The first slot to try: the id's low random bits, mixed (ids made in one millisecond differ
   * there by one). */
  static #start(key: Uint32Array, slots: number): number {
    const mixed = Math.imul(key[3]! ^ key[2]!, 0x9e3779b1) ^ key[1]!;
    return (mixed >>> 0) & (slots - 1);
  }

  #find(table: Uint32Array, slots: number, key: Uint32Array): number {
    for (let slot = IdSet.#start(key, slots); ; slot = (slot + 1) & (slots - 1)) {
      const at = slot * 4;
      const a = table[at]!;
      const b = table[at + 1]!;
      const c = table[at + 2]!;
      const d = table[at + 3]!;
      if ((a | b | c | d) === 0) return -1;
      if (a === key[0] && b === key[1] && c === key[2] && d === key[3]) return slot;
    }
  }

  #insert(table: Uint32Array, slots: number, key: Uint32Array): void {
    let slot = IdSet.#start(key, slots);
    while (!empty(table, slot * 4)) slot = (slot + 1) & (slots - 1);
    table.set(key, slot * 4);
  }

  #grow(): void {
    const old = this.#table;
    const slots = this.#slots * 2;
    const table = new Uint32Array(slots * 4);
    const key = new Uint32Array(4);
    for (let at = 0; at < old.length; at += 4) {
      if (empty(old, at)) continue;
      key.set(old.subarray(at, at + 4));
      this.#insert(table, slots, key);
    }
    this.#table = table;
    this.#slots = slots;
  }
}
