/**
 * The round secrets an embedded store holds (KeyStore putRoundSecret): one sealed secret per
 * round, shared by the records put with a part of it, each kept as a packed string
 * (compact-memory.ts) beside the number of live records that refer to it. A round's secret leaves
 * memory with the last of those records (they retire: record-rules.ts), so memory holds only the
 * secrets a live record can still be read with; the writer names it on that retire line (the
 * line's `rounds`), and compaction leaves its roundsecret line out once that retire line is past
 * the retention.
 */
export class RoundSecrets {
  readonly #rounds = new Map<string, { packed: string; live: number }>();

  get size(): number {
    return this.#rounds.size;
  }

  has(roundId: string): boolean {
    return this.#rounds.has(roundId);
  }

  /** Adds round `roundId`'s sealed secret, packed; false when the round has one already. */
  add(roundId: string, packed: string): boolean {
    if (this.#rounds.has(roundId)) return false;
    this.#rounds.set(roundId, { packed, live: 0 });
    return true;
  }

  /** The round's sealed secret, packed, or undefined. */
  packed(roundId: string): string | undefined {
    return this.#rounds.get(roundId)?.packed;
  }

  /** A record of the round put with a part: false when the round has no secret. */
  ref(roundId: string): boolean {
    const round = this.#rounds.get(roundId);
    if (!round) return false;
    round.live++;
    return true;
  }

  /** Undoes `ref` (a put whose line failed) or counts a record of the round retired; true when
   * none is left that refers to it. */
  unref(roundId: string): boolean {
    const round = this.#rounds.get(roundId);
    if (!round || round.live === 0) throw new Error(`RoundSecrets: ${roundId} has no live record`);
    round.live--;
    return round.live === 0;
  }

  /** Live records that refer to round `roundId`'s secret (0 for an unknown round). */
  live(roundId: string): number {
    return this.#rounds.get(roundId)?.live ?? 0;
  }

  /** Lets round `roundId`'s secret go (its last record retired). */
  delete(roundId: string): void {
    this.#rounds.delete(roundId);
  }

  /** Every round id and its packed secret (for a copy into another store). */
  entries(): IterableIterator<[string, { packed: string; live: number }]> {
    return this.#rounds.entries();
  }
}
