/**
 * Requester registrations on PostgreSQL (RequesterStore, requester-store.ts), beside the key store
 * (tables `requesters` and `requester_changes`, schema version 3: src/store/postgres-schema.ts,
 * docs/PROTOCOL.md §10.1), so that every distribution server on one database authenticates the
 * same requesters.
 *
 * - A change (add, replace, remove) is one transaction that first raises
 *   `requester_changes.version`: that row's lock serializes changes from any process, and the new
 *   version tells every server to read the registrations again.
 * - Servers notice a change by polling that one row every POLL_MS (500 ms), so a removal is
 *   refused everywhere within about half a second plus a query. Polling rather than
 *   LISTEN/NOTIFY: a notification sent while a listener is reconnecting is lost, so a listener
 *   would need the poll as well; a poll needs no connection of its own outside the pool and
 *   recovers from an outage by itself. It costs one single-row read per server every 500 ms.
 * - The response key (K_resp) is sealed under a key derived from the store key (AES-256-GCM,
 *   HKDF-SHA256 info RESPONSE_KEY_INFO, AAD LP(RESPONSE_KEY_INFO, id)), as every secret in the
 *   database is: a dump without `store.key` cannot forge answers to a client. The credential is
 *   kept as its SHA-256 only, as in requesters.json.
 */
import { hkdfSync } from "node:crypto";
import { lengthPrefixed } from "../crypto/canonical.js";
import { aesGcmOpen, aesGcmSeal } from "../crypto/envelope.js";
import { osRandom, type RandomSource } from "../crypto/random.js";
import { DkeygenError, ErrorCodes } from "../errors.js";
import type { PostgresKeyStore, TransactionQuery } from "../store/postgres.js";
import {
  type AddedRequester,
  type AddOptions,
  checkRequesterName,
  type ListedRequester,
  liveNameTaken,
  makeRegistration,
  newRegistrationId,
  noSuchRequester,
  REGISTRATION_ID,
  type RegistrationSnapshot,
  type RequesterStore,
  requesterKeyFromPem,
  type StoredRegistration,
  type Tombstone,
} from "./requester-store.js";

export const RESPONSE_KEY_INFO = "dkeygen/v1/store/requester-response-key";
/** How often a server asks whether the registrations changed. */
export const POLL_MS = 500;

interface Row {
  version: string;
  id: string | null;
  name: string;
  public_key: string;
  fingerprint: string;
  credential_hash: Buffer;
  response_key_iv: Buffer;
  response_key_ct: Buffer;
  response_key_tag: Buffer;
  added_at: Date;
}

const LIVE =
  "SELECT c.version, r.id, r.name, r.public_key, r.fingerprint, r.credential_hash, " +
  "r.response_key_iv, r.response_key_ct, r.response_key_tag, r.added_at " +
  "FROM requester_changes c LEFT JOIN requesters r ON r.removed_at IS NULL ORDER BY r.seq";

export class PostgresRequesterStore implements RequesterStore {
  readonly where: string;
  readonly pollMs = POLL_MS;
  readonly #store: PostgresKeyStore;
  readonly #key: Buffer;
  readonly #random: RandomSource;

  /** `store` must be open (schema version 3 or later); `storeKey` is the one it was opened with. */
  constructor(
    store: PostgresKeyStore,
    storeKey: Uint8Array,
    options: { random?: RandomSource } = {},
  ) {
    if (!(storeKey instanceof Uint8Array) || storeKey.length !== 32) {
      throw new TypeError("PostgresRequesterStore: storeKey must be 32 bytes");
    }
    this.#store = store;
    this.where = store.shownUrl;
    this.#key = Buffer.from(hkdfSync("sha256", storeKey, new Uint8Array(0), RESPONSE_KEY_INFO, 32));
    this.#random = options.random ?? osRandom;
  }

  async add(name: string, publicKeyPem: string, options: AddOptions = {}): Promise<AddedRequester> {
    checkRequesterName(name);
    const key = requesterKeyFromPem(publicKeyPem);
    const random = options.random ?? this.#random;
    return this.#store.transaction(async (query) => {
      await query("UPDATE requester_changes SET version = version + 1", []);
      const live = await query<{ id: string }>(
        "SELECT id FROM requesters WHERE name = $1 AND removed_at IS NULL",
        [name],
      );
      const kept = live[0]?.id;
      if (kept !== undefined && !options.replace) throw liveNameTaken(name);
      let id = kept ?? newRegistrationId(random, () => false);
      let made = makeRegistration(id, name, key, random, options.now ?? new Date());
      if (kept !== undefined) {
        await query(
          "UPDATE requesters SET public_key = $2, fingerprint = $3, credential_hash = $4, " +
            "response_key_iv = $5, response_key_ct = $6, response_key_tag = $7, added_at = $8 " +
            "WHERE id = $1 AND removed_at IS NULL",
          this.#values(made.registration),
        );
      } else {
        // 16 random bytes do not collide; the loop only keeps the primary key's promise.
        while (
          (
            await query(
              "INSERT INTO requesters (id, name, public_key, fingerprint, credential_hash, " +
                "response_key_iv, response_key_ct, response_key_tag, added_at) " +
                "VALUES ($1, $9, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING id",
              [...this.#values(made.registration), name],
            )
          ).length === 0
        ) {
          id = newRegistrationId(random, () => false);
          made = makeRegistration(id, name, key, random, options.now ?? new Date());
        }
      }
      const before =
        kept !== undefined
          ? []
          : await query<{ id: string }>(
              "SELECT id FROM requesters WHERE name = $1 AND removed_at IS NOT NULL ORDER BY seq",
              [name],
            );
      return {
        name,
        id,
        fingerprint: made.registration.fingerprint,
        credential: made.credential,
        keptRegistration: kept !== undefined,
        removedBefore: before.map((row) => row.id),
      };
    });
  }

  /**
   * Inserts live registrations copied from requesters.json (`dkeygen store copy`) inside
   * `query`'s transaction, keeping their ids, names, keys, credential hashes and times, with K_resp
   * sealed as `add` seals it; raises the version once, so running servers read them. Each needs a
   * registration id and a response key (a TypeError otherwise: the caller refuses those first).
   */
  async insertCopied(
    query: TransactionQuery,
    registrations: readonly StoredRegistration[],
  ): Promise<void> {
    if (registrations.length === 0) return;
    await query("UPDATE requester_changes SET version = version + 1", []);
    for (const r of registrations) {
      if (!REGISTRATION_ID.test(r.id) || r.responseKey === undefined) {
        throw new TypeError(`requester ${r.name} has no registration id or no response key`);
      }
      await query(
        "INSERT INTO requesters (id, name, public_key, fingerprint, credential_hash, " +
          "response_key_iv, response_key_ct, response_key_tag, added_at) " +
          "VALUES ($1, $9, $2, $3, $4, $5, $6, $7, $8)",
        [...this.#values(r), r.name],
      );
    }
  }

  async remove(name: string, options: { now?: Date } = {}): Promise<{ name: string; id: string }> {
    if (typeof name !== "string") throw noSuchRequester(String(name));
    return this.#store.transaction(async (query) => {
      await query("UPDATE requester_changes SET version = version + 1", []);
      const gone = await query<{ id: string }>(
        "UPDATE requesters SET removed_at = $2 WHERE name = $1 AND removed_at IS NULL RETURNING id",
        [name, options.now ?? new Date()],
      );
      // Thrown, so the version raised above is rolled back with it.
      if (gone.length === 0) throw noSuchRequester(name);
      return { name, id: gone[0]!.id };
    });
  }

  async list(): Promise<{ requesters: ListedRequester[]; removed: Tombstone[] }> {
    const rows = await this.#store.transaction((query) =>
      query<{
        id: string;
        name: string;
        fingerprint: string;
        added_at: Date;
        removed_at: Date | null;
      }>(
        "SELECT id, name, fingerprint, added_at, removed_at FROM requesters " +
          "ORDER BY removed_at NULLS FIRST, seq",
        [],
      ),
    );
    return {
      requesters: rows
        .filter((row) => row.removed_at === null)
        .map((row) => ({
          name: row.name,
          id: row.id,
          fingerprint: row.fingerprint,
          addedAt: row.added_at.toISOString(),
          responseKey: true,
        })),
      removed: rows
        .filter((row) => row.removed_at !== null)
        .map((row) => ({ name: row.name, id: row.id, removedAt: row.removed_at!.toISOString() })),
    };
  }

  async version(): Promise<string> {
    const rows = await this.#store.transaction((query) =>
      query<{ version: string }>("SELECT version FROM requester_changes", []),
    );
    return rows[0]!.version;
  }

  /** One statement, so the version and the registrations are of one snapshot. */
  async snapshot(): Promise<RegistrationSnapshot> {
    const rows = await this.#store.transaction((query) => query<Row>(LIVE, []));
    return {
      version: rows[0]!.version,
      registrations: rows.filter((row) => row.id !== null).map((row) => this.#registration(row)),
    };
  }

  /** $1…$8 of an insert or a replacement: id, key, fingerprint, hash, sealed K_resp, addedAt. */
  #values(r: StoredRegistration): unknown[] {
    const iv = this.#random(12);
    const { ciphertext, tag } = aesGcmSeal(this.#key, iv, r.responseKey!, this.#aad(r.id));
    return [
      r.id,
      r.publicKey,
      r.fingerprint,
      r.credentialHash,
      Buffer.from(iv),
      Buffer.from(ciphertext),
      Buffer.from(tag),
      new Date(r.addedAt),
    ];
  }

  #registration(row: Row): StoredRegistration {
    let responseKey: Buffer;
    try {
      responseKey = Buffer.from(
        aesGcmOpen(
          this.#key,
          row.response_key_iv,
          row.response_key_ct,
          row.response_key_tag,
          this.#aad(row.id!),
        ),
      );
    } catch (cause) {
      throw new DkeygenError(
        ErrorCodes.STORE_CORRUPT,
        `The response key of requester ${row.name} (${row.id}) in the PostgreSQL key store at ` +
          `${this.where} does not decrypt.`,
        { cause },
      );
    }
    return {
      id: row.id!,
      name: row.name,
      publicKey: row.public_key,
      fingerprint: row.fingerprint,
      credentialHash: row.credential_hash,
      responseKey,
      addedAt: row.added_at.toISOString(),
    };
  }

  #aad(id: string): Uint8Array {
    return lengthPrefixed(RESPONSE_KEY_INFO, id);
  }
}
