/**
 * `copyStoreToPostgres` (dkeygen store copy) from a key_store file made through the store itself
 * into a throwaway PostgreSQL (test/helpers/postgres.ts): every record keeps its id, state and
 * sealed secret, claim order, openings, the log and requesters arrive, a void record is withdrawn,
 * and whatever is refused (a held folder, a tampered or cut file, a non-empty database, a
 * collision under force) leaves the database as it was.
 */
import assert from "node:assert/strict";
import { createPublicKey, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rename, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { toBase64url } from "../../src/crypto/base64url.js";
import { LockFile, storeLockOptions } from "../../src/datadir/lock-file.js";
import { DkeygenError, ErrorCodes } from "../../src/errors.js";
import { PostgresRequesterStore } from "../../src/server/postgres-requester-store.js";
import { FileRequesterStore } from "../../src/server/requesters.js";
import { copyStoreToPostgres } from "../../src/server/store-copy.js";
import { FileKeyStore, type SealedContents } from "../../src/store/file.js";
import { deriveStoreKeys, sealRoundSecret, sealSecret } from "../../src/store/log-format.js";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import {
  countMismatches,
  countRest,
  insertRecords,
  insertRoundSecrets,
  type PurposeCounts,
} from "../../src/store/postgres-copy.js";
import type { ClaimInput, KeyRecord, KeyStore, RecordInput } from "../../src/store/types.js";
import { testServerKey } from "../helpers/memory-server.js";
import { startPostgres } from "../helpers/postgres.js";

const cluster = await startPostgres();
const dirs: string[] = [];
/** Stores left open as a crash leaves them. */
const crashed: FileKeyStore[] = [];
after(async () => {
  await cluster.stop();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const PEM = createPublicKey(testServerKey()).export({ type: "spki", format: "pem" }) as string;
const REQUESTER = "rq:AAAAAAAAAAAAAAAAAAAAAA";

const pool = (roundId: string, extra: Partial<RecordInput> = {}): RecordInput => ({
  purpose: "otp",
  roundId,
  participants: ["c1", "c2"],
  algorithm: "otp/v1",
  public: { digits: 6 },
  secret: randomBytes(16),
  ...extra,
});

const claim = (subject: string, n: number): ClaimInput => ({
  requester: REQUESTER,
  subject,
  requestId: `req-${n}`,
  expiresAt: new Date(Date.now() + 600_000),
});

interface Made {
  dataDir: string;
  storeKey: Buffer;
  ids: { alice: string[]; bob: string; totp: string; held: string[]; void: string[] };
}

/**
 * A data folder as a file server leaves it: pooled, claimed (alice twice, then bob), consumed
 * (bob's), held (round r-held), owned with a TOTP step, an opening, two log entries, a live and a
 * removed requester, and void records (leased by a store that stopped without claiming them).
 */
async function makeDataDir(): Promise<Made> {
  const dataDir = await mkdtemp(join(tmpdir(), "dkeygen-copy-"));
  dirs.push(dataDir);
  const storeKey = randomBytes(32);
  await writeFile(join(dataDir, "store.key"), `${toBase64url(storeKey)}\n`, { mode: 0o600 });
  const path = join(dataDir, "key_store");
  const store = new FileKeyStore({ path, storeKey, leaseSize: 3 });
  await store.open();
  for (let i = 0; i < 8; i++) await store.put(pool("r-pool"));
  const held = [await store.put(pool("r-held", { held: true }))];
  held.push(await store.put(pool("r-held", { held: true })));
  const totp = await store.put(
    pool("r-totp", { purpose: "totp", owner: REQUESTER, subject: "zoe", algorithm: "totp/v1" }),
  );
  const a1 = await store.claimNext("otp", claim("alice", 1));
  const b1 = await store.claimNext("otp", claim("bob", 2));
  const a2 = await store.claimNext("otp", claim("alice", 3));
  assert.equal(await store.consume(b1!.id), true);
  assert.equal(await store.useStep(totp.id, 100), true);
  await store.putRoundOpening("r-pool", new TextEncoder().encode("opening of r-pool"));
  await store.appendLogEntry(new TextEncoder().encode("entry 0"));
  await store.appendLogEntry(new TextEncoder().encode("entry 1"));
  // A "reserved" claim leases 3 records and claims one; the store then stops without closing
  // (a crash): the other two are void once the file is opened again.
  const leased = await store.claimNext("otp", claim("carol", 4), { ack: "reserved" });
  assert.ok(leased);
  await store.put(pool("r-late")); // writes the queued claim line before it
  crashed.push(store); // never closed: kept from the garbage collector, which would say so
  await unlink(`${path}.lock`);
  const reopened = new FileKeyStore({ path, storeKey });
  await reopened.open();
  const voided = (await reopened.sealedContents()).records
    .filter((r) => r.void)
    .map((r) => r.record.id);
  await reopened.close();
  assert.equal(voided.length, 2);
  const requesters = new FileRequesterStore(dataDir);
  await requesters.add("old", PEM);
  await requesters.remove("old");
  await requesters.add("webapp", PEM);
  return {
    dataDir,
    storeKey,
    ids: {
      alice: [a1!.id, a2!.id],
      bob: b1!.id,
      totp: totp.id,
      held: held.map((r) => r.id),
      void: voided,
    },
  };
}

/** What a file server would hand out from `dataDir`'s key_store: claimed on a scratch copy. */
async function handedOutByFile(made: Made): Promise<string[]> {
  const scratch = await mkdtemp(join(tmpdir(), "dkeygen-copy-scratch-"));
  dirs.push(scratch);
  for (const name of ["key_store", "key_store.head"]) {
    await writeFile(join(scratch, name), await readFile(join(made.dataDir, name)));
  }
  const store = new FileKeyStore({ path: join(scratch, "key_store"), storeKey: made.storeKey });
  await store.open();
  const ids: string[] = [];
  for (;;) {
    const next = await store.claimNext("otp", claim("dave", 9));
    if (!next) break;
    ids.push(next.id);
  }
  await store.close();
  return ids;
}

async function openPostgres(url: string, storeKey: Uint8Array): Promise<PostgresKeyStore> {
  const store = new PostgresKeyStore({ url, storeKey });
  await store.open();
  return store;
}

const isCode = (code: string, pattern: RegExp) => (error: unknown) =>
  error instanceof DkeygenError && error.code === code && pattern.test(error.message);

test("a copy keeps every record's id, state and secret, claim order, openings, log entries and requesters; void records are never handed out", async () => {
  const made = await makeDataDir();
  const url = await cluster.createDatabase();
  const report = await copyStoreToPostgres({ dataDir: made.dataDir, url });
  assert.equal(report.to.includes(cluster.password), false);
  assert.equal(report.voidRecords, 2);
  assert.equal(report.roundSecrets, 0);
  assert.equal(report.roundOpenings, 1);
  assert.equal(report.logEntries, 2);
  assert.equal(report.requesters, 1);
  assert.equal(report.removedRequesters, 1);
  assert.deepEqual(report.records, [
    { purpose: "otp", records: 11, claimable: 3, held: 2, claimed: 4, consumed: 3, stepped: 0 },
    { purpose: "totp", records: 1, claimable: 0, held: 0, claimed: 0, consumed: 0, stepped: 1 },
  ]);

  const file = new FileKeyStore({ path: join(made.dataDir, "key_store"), storeKey: made.storeKey });
  await file.open();
  const db = await openPostgres(url, made.storeKey);
  try {
    const fileRecords = await file.list();
    const dbRecords = await db.list();
    assert.equal(dbRecords.length, fileRecords.length);
    const voided = new Set<string>();
    for (const [i, record] of fileRecords.entries()) {
      const copied = dbRecords[i]!;
      if (copied.consumedAt !== undefined && record.consumedAt === undefined) {
        voided.add(record.id);
        delete copied.consumedAt;
      }
      assert.deepEqual(copied, record);
      assert.deepEqual(await db.readSecret(record.id), await file.readSecret(record.id));
    }
    assert.deepEqual(await db.readRoundOpening("r-pool"), await file.readRoundOpening("r-pool"));
    assert.equal(db.logSize(), 2);
    assert.deepEqual(await db.logEntries(0, 2), await file.logEntries(0, 2));
    const latest = { claimedBy: REQUESTER, subject: "alice", latestClaims: 2 };
    assert.deepEqual(
      (await db.list(latest)).map((r) => r.id),
      made.ids.alice,
      "alice's claims in claim order",
    );
    assert.deepEqual(
      (await db.list({ ...latest, latestClaims: 1 })).map((r) => r.id),
      [made.ids.alice[1]],
    );
    // The pool: exactly the file's claimable records, oldest first; never a void or held one.
    assert.equal(await db.countUnclaimed("otp"), await file.countUnclaimed("otp"));
    const handed: string[] = [];
    for (;;) {
      const next = await db.claimNext("otp", claim("dave", 9));
      if (!next) break;
      handed.push(next.id);
    }
    assert.deepEqual(handed, await handedOutByFile(made));
    assert.equal(handed.length, 3);
    assert.deepEqual([...voided].sort(), [...made.ids.void].sort());
    assert.equal(await db.releaseHeld("r-held"), 2);
    assert.equal(await db.consume(made.ids.bob), false, "a used OTP stays used");
    assert.equal(await db.useStep(made.ids.totp, 100), false, "the step does not go back");
    assert.equal(await db.useStep(made.ids.totp, 101), true);
    const fileRequesters = await new FileRequesterStore(made.dataDir).snapshot();
    const dbRequesters = await new PostgresRequesterStore(db, made.storeKey).snapshot();
    assert.deepEqual(dbRequesters.registrations, fileRequesters.registrations);
  } finally {
    await db.close();
    await file.close();
  }
});

/** The file store's round secrets (KeyStore putRoundSecret), once it has them. */
type FileWithRoundSecrets = FileKeyStore & Pick<KeyStore, "putRoundSecret" | "readSecretPart">;
/** The next test runs once the key_store file keeps round secrets (FileKeyStore.putRoundSecret). */
const untilFileHasRoundSecrets = {
  skip:
    typeof (FileKeyStore.prototype as Partial<KeyStore>).putRoundSecret === "function"
      ? false
      : "the key_store file has no round secrets yet",
};

test(
  "a copy keeps round secrets and the records sharing them: each record's round part and its round's secret read back as from the file, and the counts cover them",
  untilFileHasRoundSecrets,
  async () => {
    const made = await makeDataDir();
    const path = join(made.dataDir, "key_store");
    const writer = new FileKeyStore({ path, storeKey: made.storeKey }) as FileWithRoundSecrets;
    await writer.open();
    const roundSecret = randomBytes(100);
    await writer.putRoundSecret("r-batch", roundSecret);
    const parts: string[] = [];
    for (const roundPart of [0, 1, 4294967295]) {
      const { secret: _, ...rest } = pool("r-batch");
      parts.push((await writer.put({ ...rest, roundPart })).id);
    }
    const claimedPart = await writer.claimNext("otp", claim("frank", 7));
    assert.ok(claimedPart);
    await writer.close();

    const url = await cluster.createDatabase();
    const report = await copyStoreToPostgres({ dataDir: made.dataDir, url });
    assert.equal(report.roundSecrets, 1);
    assert.equal(report.records[0]!.records, 14);
    const file = new FileKeyStore({ path, storeKey: made.storeKey }) as FileWithRoundSecrets;
    await file.open();
    const db = await openPostgres(url, made.storeKey);
    try {
      for (const record of await file.list()) {
        assert.deepEqual(await db.readSecretPart(record.id), await file.readSecretPart(record.id));
      }
      for (const [i, id] of parts.entries()) {
        assert.deepEqual(await db.get(id), await file.get(id));
        assert.deepEqual(await db.readSecretPart(id), {
          kind: "round",
          roundSecret: new Uint8Array(roundSecret),
          roundPart: [0, 1, 4294967295][i],
        });
        await assert.rejects(db.readSecret(id), (e: unknown) =>
          isCode(ErrorCodes.INVALID_INPUT, /readSecretPart/)(e),
        );
      }
      await assert.rejects(
        db.putRoundSecret("r-batch", new Uint8Array([1])),
        isCode(ErrorCodes.INVALID_INPUT, /already has a round secret/),
      );
    } finally {
      await db.close();
      await file.close();
    }
    // A second copy with force collides on the round secret before anything else.
    await assert.rejects(
      copyStoreToPostgres({ dataDir: made.dataDir, url, force: true }),
      isCode(ErrorCodes.OPERATIONAL, /holds the round secret of round r-batch already/),
    );
  },
);

test("round secrets are inserted sealed as they are, before the records sharing them, which keep only their part; the counts see both (the database's side of a copy, its contents made by hand)", async () => {
  const url = await cluster.createDatabase();
  const storeKey = randomBytes(32);
  const key = deriveStoreKeys(storeKey).secret;
  const db = await openPostgres(url, storeKey);
  const at = new Date();
  const record = (id: string, roundId: string): KeyRecord => ({
    id,
    purpose: "otp",
    createdAt: at.toISOString(),
    roundId,
    participants: ["c1", "c2"],
    algorithm: "otp/v1",
    public: { digits: 6 },
  });
  const ids = [
    "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "01ARZ3NDEKTSV4RRFFQ69G5FAW",
    "01ARZ3NDEKTSV4RRFFQ69G5FAX",
  ];
  const roundSecret = randomBytes(64);
  const own = randomBytes(16);
  const sealedRound = sealRoundSecret(key, randomBytes, "r-batch", roundSecret);
  const contents: SealedContents = {
    records: [
      { record: record(ids[0]!, "r-batch"), roundPart: 0, void: false },
      { record: record(ids[1]!, "r-batch"), roundPart: 4294967295, void: true },
      {
        record: record(ids[2]!, "r-own"),
        sealed: sealSecret(key, randomBytes, record(ids[2]!, "r-own"), own),
        void: false,
      },
    ],
    roundSecrets: [{ roundId: "r-batch", sealed: sealedRound }],
    claimGroups: [],
    openings: [],
    leaves: [],
  };
  const collision = (what: string) => new Error(`collision: ${what}`);
  try {
    await db.transaction(async (query) => {
      await insertRoundSecrets(query, contents.roundSecrets, collision);
      await insertRecords(query, contents, at, collision);
      assert.deepEqual(await countRest(query, [], ["r-batch", "r-own"], ids), {
        roundOpenings: 0,
        roundSecrets: 1,
        roundParts: 2,
        logEntries: 0,
      });
    });
    const [stored] = await cluster.admin<{ iv: Buffer; ct: Buffer; tag: Buffer }>(
      "SELECT iv, ct, tag FROM round_secrets",
      [],
      new URL(url).pathname.slice(1),
    );
    assert.deepEqual(
      [stored!.iv, stored!.ct, stored!.tag].map((b) => Buffer.from(b).toString("hex")),
      [sealedRound.iv, sealedRound.ct, sealedRound.tag].map((b) => Buffer.from(b).toString("hex")),
      "the ciphertext as it was",
    );
    assert.deepEqual(await db.readSecretPart(ids[0]!), {
      kind: "round",
      roundSecret: new Uint8Array(roundSecret),
      roundPart: 0,
    });
    assert.deepEqual(await db.readSecretPart(ids[1]!), {
      kind: "round",
      roundSecret: new Uint8Array(roundSecret),
      roundPart: 4294967295,
    });
    assert.ok((await db.get(ids[1]!))?.consumedAt, "a void record arrives consumed");
    assert.deepEqual(await db.readSecretPart(ids[2]!), {
      kind: "own",
      secret: new Uint8Array(own),
    });
    // A round secret in both is a collision; a record whose round secret was not copied first
    // is refused by the database.
    await assert.rejects(
      db.transaction((query) => insertRoundSecrets(query, contents.roundSecrets, collision)),
      /collision: the round secret of round r-batch/,
    );
    const orphan: SealedContents = {
      ...contents,
      records: [
        { record: record("01ARZ3NDEKTSV4RRFFQ69G5FAY", "r-none"), roundPart: 1, void: false },
      ],
      roundSecrets: [],
    };
    await assert.rejects(
      db.transaction((query) => insertRecords(query, orphan, at, collision)),
      isCode(ErrorCodes.OPERATIONAL, /SQLSTATE 23503/),
    );
    assert.equal((await db.list()).length, 3);
  } finally {
    await db.close();
  }
});

test("a second copy into the same database is refused (E_USAGE), and with force every collision refuses it: nothing is added", async () => {
  const made = await makeDataDir();
  const url = await cluster.createDatabase();
  await copyStoreToPostgres({ dataDir: made.dataDir, url });
  const count = async () =>
    (
      await cluster.admin<{ n: string }>(
        "SELECT (SELECT count(*) FROM key_records) + (SELECT count(*) FROM requesters) AS n",
        [],
        new URL(url).pathname.slice(1),
      )
    )[0]!.n;
  const before = await count();
  await assert.rejects(
    copyStoreToPostgres({ dataDir: made.dataDir, url }),
    isCode(
      ErrorCodes.USAGE,
      /is not empty \(12 records, 0 round secrets, 1 round openings, 2 log entries, 1 requesters\).*--force/,
    ),
  );
  await assert.rejects(
    copyStoreToPostgres({ dataDir: made.dataDir, url, force: true }),
    isCode(ErrorCodes.OPERATIONAL, /holds record [0-9A-Z]{26} already.*Nothing was copied/),
  );
  assert.equal(await count(), before);
});

test("a database holding only a round secret is not empty: the copy is refused without force", async () => {
  const made = await makeDataDir();
  const url = await cluster.createDatabase();
  const db = await openPostgres(url, made.storeKey);
  await db.putRoundSecret("r-elsewhere", new Uint8Array([1]));
  await db.close();
  await assert.rejects(
    copyStoreToPostgres({ dataDir: made.dataDir, url }),
    isCode(ErrorCodes.USAGE, /is not empty \(0 records, 1 round secrets, 0 round openings/),
  );
});

test("with force, a collision found after records were inserted rolls the whole copy back", async () => {
  const made = await makeDataDir();
  const url = await cluster.createDatabase();
  const db = await openPostgres(url, made.storeKey);
  await db.putRoundOpening("r-pool", new TextEncoder().encode("another opening"));
  await db.close();
  await assert.rejects(
    copyStoreToPostgres({ dataDir: made.dataDir, url, force: true }),
    isCode(ErrorCodes.OPERATIONAL, /holds the opening of round r-pool already/),
  );
  const rows = await cluster.admin<{ n: string }>(
    "SELECT count(*) AS n FROM key_records",
    [],
    new URL(url).pathname.slice(1),
  );
  assert.equal(rows[0]!.n, "0");
});

test("with force, a database's other records stay and the file's are added beside them", async () => {
  const made = await makeDataDir();
  const url = await cluster.createDatabase();
  const db = await openPostgres(url, made.storeKey);
  const other = await db.put(pool("r-db"));
  await db.claimNext("otp", claim("erin", 1));
  await db.close();
  const report = await copyStoreToPostgres({ dataDir: made.dataDir, url, force: true });
  assert.equal(report.records[0]!.records, 11, "counted: the copied records");
  const again = await openPostgres(url, made.storeKey);
  try {
    assert.ok(await again.get(other.id));
    assert.equal((await again.list()).length, 13);
    const latest = { claimedBy: REQUESTER, subject: "alice", latestClaims: 2 };
    assert.deepEqual(
      (await again.list(latest)).map((r) => r.id),
      made.ids.alice,
    );
  } finally {
    await again.close();
  }
});

test("a tampered or cut key_store is refused with the store's own error, and the database is not touched", async () => {
  const made = await makeDataDir();
  const url = await cluster.createDatabase();
  const path = join(made.dataDir, "key_store");
  const original = await readFile(path, "utf8");
  const lines = original.split(/(?<=\n)/);
  lines[3] = lines[3]!.replace(/"roundId":"r-pool"/, '"roundId":"r-poOl"');
  await writeFile(path, lines.join(""));
  await assert.rejects(
    copyStoreToPostgres({ dataDir: made.dataDir, url }),
    isCode(ErrorCodes.STORE_CORRUPT, /corrupt or was tampered with at line 4/),
  );
  await writeFile(
    path,
    original
      .split(/(?<=\n)/)
      .slice(0, 5)
      .join(""),
  );
  await assert.rejects(
    copyStoreToPostgres({ dataDir: made.dataDir, url }),
    isCode(ErrorCodes.STORE_CORRUPT, /has 5 lines/),
  );
  const tables = await cluster.admin<{ n: string }>(
    "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'",
    [],
    new URL(url).pathname.slice(1),
  );
  assert.equal(tables[0]!.n, "0", "no schema made, nothing written");
});

test("a head file kept elsewhere is found with storeHeadFile; without it the key_store is refused as without a head", async () => {
  const made = await makeDataDir();
  const url = await cluster.createDatabase();
  const elsewhere = join(made.dataDir, "..", `${made.dataDir.split("/").pop()}.head`);
  dirs.push(elsewhere);
  await rename(join(made.dataDir, "key_store.head"), elsewhere);
  await assert.rejects(
    copyStoreToPostgres({ dataDir: made.dataDir, url }),
    isCode(ErrorCodes.STORE_CORRUPT, /head/),
  );
  const report = await copyStoreToPostgres({
    dataDir: made.dataDir,
    url,
    storeHeadFile: elsewhere,
  });
  assert.equal(report.records[0]!.records, 11);
});

test("a folder without a key_store is refused (E_NOT_FOUND), as is one whose store.key is missing", async () => {
  const empty = await mkdtemp(join(tmpdir(), "dkeygen-copy-empty-"));
  dirs.push(empty);
  const url = await cluster.createDatabase();
  await assert.rejects(
    copyStoreToPostgres({ dataDir: empty, url }),
    isCode(ErrorCodes.NOT_FOUND, /has no key_store: nothing to copy/),
  );
  const made = await makeDataDir();
  await unlink(join(made.dataDir, "store.key"));
  await assert.rejects(
    copyStoreToPostgres({ dataDir: made.dataDir, url }),
    isCode(ErrorCodes.STORE_CORRUPT, /has no key file .*store\.key/),
  );
});

test("a data folder whose store is open elsewhere is refused, naming the holder", async () => {
  const made = await makeDataDir();
  const url = await cluster.createDatabase();
  const path = join(made.dataDir, "key_store");
  const lock = await LockFile.acquire(`${path}.lock`, storeLockOptions(path));
  try {
    await assert.rejects(
      copyStoreToPostgres({ dataDir: made.dataDir, url }),
      isCode(ErrorCodes.OPERATIONAL, /is in use by process \d+ \(this process\).*stop the server/),
    );
  } finally {
    await lock.release();
  }
});

test("registrations from before ids or response keys are refused by name before anything is written", async () => {
  const made = await makeDataDir();
  const url = await cluster.createDatabase();
  const file = join(made.dataDir, "requesters.json");
  const document = JSON.parse(await readFile(file, "utf8"));
  const { id: _id, responseKey: _key, ...legacy } = document.requesters[0];
  document.requesters.push({ ...legacy, name: "legacy" });
  await writeFile(file, JSON.stringify(document));
  await assert.rejects(
    copyStoreToPostgres({ dataDir: made.dataDir, url }),
    isCode(ErrorCodes.INVALID_INPUT, /\(legacy\).*Nothing was copied/),
  );
  const tables = await cluster.admin<{ n: string }>(
    "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'",
    [],
    new URL(url).pathname.slice(1),
  );
  assert.equal(tables[0]!.n, "0");
});

test("count mismatches name the purpose and the count that differs, and a purpose only in the database", () => {
  const counts = (purpose: string, records: number, consumed = 0): PurposeCounts => ({
    purpose,
    records,
    claimable: records - consumed,
    held: 0,
    claimed: 0,
    consumed,
    stepped: 0,
  });
  assert.deepEqual(countMismatches([counts("otp", 3, 1)], [counts("otp", 3, 1)]), []);
  assert.deepEqual(countMismatches([counts("otp", 3, 1)], [counts("otp", 3, 0)]), [
    "otp: claimable 3 in the database, 2 in the file",
    "otp: consumed 0 in the database, 1 in the file",
  ]);
  assert.deepEqual(countMismatches([counts("otp", 1)], []), [
    "otp: records 0 in the database, 1 in the file",
    "otp: claimable 0 in the database, 1 in the file",
  ]);
  assert.deepEqual(countMismatches([], [counts("rsa", 2)]), [
    "rsa: 2 records in the database, none in the file",
  ]);
});
