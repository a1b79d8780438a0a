/**
 * A box for secret bytes that refuses to be printed: `JSON.stringify`, `console.log`,
 * `util.inspect` and template strings all show `<redacted>`. The bytes come out only through an
 * explicit `expose()`, which makes every use of a secret easy to find in review.
 */
import { inspect } from "node:util";

export class Secret {
  readonly #bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  get length(): number {
    return this.#bytes.length;
  }

  expose(): Uint8Array {
    return this.#bytes;
  }

  /** Overwrites the bytes with zeros. JavaScript may have copies elsewhere; this is best effort. */
  wipe(): void {
    this.#bytes.fill(0);
  }

  toJSON(): string {
    return "<redacted>";
  }

  toString(): string {
    return "<redacted>";
  }

  [inspect.custom](): string {
    return "Secret(<redacted>)";
  }
}
