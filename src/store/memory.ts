/**
 * `MemoryKeyStore`: a KeyStore that lives in process memory, for tests and demos that must not
 * touch the disk: the record core the file store uses too (record-rules.ts), with secrets, openings
 * and log entries kept beside it. It follows the same contract as the `key_store` file (it passes the same
 * compliance suite) except durability: everything is gone when the process ends.
 *
 * Secret parts are kept as the store's own copies, never the caller's buffer (callers wipe their
 * buffers after `put`), handed out as fresh copies, and wiped on `close`.
 */
import { osRandom, type RandomSource } from "../crypto/random.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import {
  checkClaim,
  checkConsumeAt,
  checkId,
  checkListQuery,
  checkLogRange,
  checkPurpose,
  checkRecordInput,
  checkRoundId,
  checkRoundOpening,
  checkRoundSecret,
  checkStep,
  copyLogLeaf,
  copyRecord,
  newRecord,
  noRoundSecret,
  notFound,
  notOwnSecret,
  openingExists,
  roundSecretExists,
} from "./inputs.js";
import { UlidGenerator } from "./record-id.js";
import { consumeRule, liveAnswer, mustApply, RecordCore, stepRule } from "./record-rules.js";
import type {
  ClaimInput,
  ClaimOptions,
  KeyRecord,
  KeyStore,
  ListQuery,
  RecordInput,
  SecretPart,
} from "./types.js";

export interface MemoryKeyStoreOptions {
  /** Randomness for record ids; the OS CSPRNG by default. */
  random?: RandomSource;
  /** The time for ids, `createdAt`, claims, consumptions and steps; `new Date()` by default. */
  clock?: () => Date;
}

type State = "new" | "open" | "closed";

export class MemoryKeyStore implements KeyStore {
  readonly kind = "memory";
  readonly #clock: () => Date;
  readonly #ids: UlidGenerator;
  readonly #core = new RecordCore();
  /** Each record's own secret part, or the number of its part of its round's secret. */
  readonly #secrets = new Map<string, Uint8Array | number>();
  readonly #roundSecrets = new Map<string, Uint8Array>();
  readonly #leaves: Uint8Array[] = [];
  readonly #openings = new Map<string, Uint8Array>();
  #state: State = "new";

  constructor(options: MemoryKeyStoreOptions = {}) {
    this.#clock = options.clock ?? (() => new Date());
    this.#ids = new UlidGenerator({
      random: options.random ?? osRandom,
      now: () => this.#clock().getTime(),
    });
  }

  async open(): Promise<void> {
    if (this.#state !== "new") {
      throw new DkeygenError(ErrorCodes.OPERATIONAL, "This memory key store was already opened.");
    }
    this.#state = "open";
  }

  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    for (const secret of this.#secrets.values()) if (typeof secret !== "number") secret.fill(0);
    this.#secrets.clear();
    for (const secret of this.#roundSecrets.values()) secret.fill(0);
    this.#roundSecrets.clear();
    for (const opening of this.#openings.values()) opening.fill(0);
    this.#openings.clear();
  }

  async put(input: RecordInput): Promise<KeyRecord> {
    this.#assertOpen();
    checkRecordInput(input);
    if (input.roundPart !== undefined && !this.#roundSecrets.has(input.roundId)) {
      throw noRoundSecret(input.roundId);
    }
    const record = newRecord(this.#ids.next(), input, this.#clock());
    this.#secrets.set(record.id, input.roundPart ?? new Uint8Array(input.secret!));
    mustApply(this.#core.add(record));
    return copyRecord(record);
  }

  async get(id: string): Promise<KeyRecord | undefined> {
    this.#assertOpen();
    checkId(id);
    const record = this.#core.index.get(id);
    return record && copyRecord(record);
  }

  async list(query: ListQuery = {}): Promise<KeyRecord[]> {
    this.#assertOpen();
    checkListQuery(query);
    return this.#core.index.list(query).map(copyRecord);
  }

  async readSecret(id: string): Promise<Uint8Array> {
    this.#assertOpen();
    checkId(id);
    const secret = this.#secrets.get(id);
    if (secret === undefined) throw notFound(id);
    if (typeof secret === "number") throw notOwnSecret(id);
    return new Uint8Array(secret);
  }

  async readSecretPart(id: string): Promise<SecretPart> {
    this.#assertOpen();
    checkId(id);
    const secret = this.#secrets.get(id);
    if (secret === undefined) throw notFound(id);
    if (typeof secret !== "number") return { kind: "own", secret: new Uint8Array(secret) };
    const roundSecret = this.#roundSecrets.get(this.#core.index.get(id)!.roundId)!;
    return { kind: "round", roundSecret: new Uint8Array(roundSecret), roundPart: secret };
  }

  async putRoundSecret(roundId: string, secret: Uint8Array): Promise<void> {
    this.#assertOpen();
    const copy = checkRoundSecret(roundId, secret);
    if (this.#roundSecrets.has(roundId)) {
      copy.fill(0);
      throw roundSecretExists(roundId);
    }
    this.#roundSecrets.set(roundId, copy);
  }

  /** Nothing here outlives the process, so every claim is as final as it gets at once. */
  async claimNext(
    purpose: string,
    claim: ClaimInput,
    _options?: ClaimOptions,
  ): Promise<KeyRecord | undefined> {
    this.#assertOpen();
    const built = checkClaim(purpose, claim, this.#clock());
    const record = this.#core.claimOldest(purpose, built);
    return record && copyRecord(record);
  }

  async consume(id: string, at?: Date): Promise<boolean> {
    this.#assertOpen();
    checkId(id);
    checkConsumeAt(at);
    if (!liveAnswer(consumeRule(id, this.#core.index.get(id)))) return false;
    mustApply(this.#core.consume(id, (at ?? this.#clock()).toISOString()));
    return true;
  }

  async useStep(id: string, step: number, at?: Date): Promise<boolean> {
    this.#assertOpen();
    checkId(id);
    const value = checkStep(step);
    checkConsumeAt(at);
    if (!liveAnswer(stepRule(id, this.#core.index.get(id), value))) return false;
    mustApply(this.#core.useStep(id, value, (at ?? this.#clock()).toISOString()));
    return true;
  }

  async countUnclaimed(purpose: string): Promise<number> {
    this.#assertOpen();
    checkPurpose(purpose);
    return this.#core.countClaimable(purpose);
  }

  async releaseHeld(roundId: string): Promise<number> {
    this.#assertOpen();
    checkRoundId(roundId);
    const release = this.#core.releaseRound(roundId);
    return "released" in release ? release.released : 0;
  }

  async appendLogEntry(leaf: Uint8Array): Promise<number> {
    this.#assertOpen();
    return this.#leaves.push(copyLogLeaf(leaf)) - 1;
  }

  async putRoundOpening(roundId: string, opening: Uint8Array): Promise<void> {
    this.#assertOpen();
    const copy = checkRoundOpening(roundId, opening);
    if (this.#openings.has(roundId)) {
      copy.fill(0);
      throw openingExists(roundId);
    }
    this.#openings.set(roundId, copy);
  }

  async readRoundOpening(roundId: string): Promise<Uint8Array | undefined> {
    this.#assertOpen();
    checkRoundId(roundId);
    const opening = this.#openings.get(roundId);
    return opening && new Uint8Array(opening);
  }

  logSize(): number {
    return this.#leaves.length;
  }

  async logEntries(start: number, end: number): Promise<Uint8Array[]> {
    this.#assertOpen();
    checkLogRange(start, end, this.#leaves.length);
    return this.#leaves.slice(start, end).map((leaf) => new Uint8Array(leaf));
  }

  #assertOpen(): void {
    if (this.#state !== "open") {
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        this.#state === "new"
          ? "The key store is not open; call open() first."
          : "The key store is closed.",
      );
    }
  }
}
