/**
 * The key_store file's replay (src/store/replay.ts) from a table: each row is a sequence of lines
 * (bodies chained under one MAC key, then optionally damaged) and the state it replays to, or the
 * first failure (the line and why). No file, no store: replay is a function of the lines.
 */
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import {
  CHAIN_START,
  claimBody,
  claimsBody,
  compactedBody,
  consumeBody,
  consumesBody,
  deriveStoreKeys,
  expandClaims,
  leaseBody,
  openingBody,
  readSegments,
  recordBody,
  recordsBody,
  retireBody,
  rollbackBody,
  roundSecretBody,
  type Segment,
  stepBody,
  switchedBody,
  tlogBody,
  unholdBody,
} from "../../src/store/log-format.js";
import { type ReplayResult, replay, segmentsOf } from "../../src/store/replay.js";
import type { Claim, KeyRecord } from "../../src/store/types.js";
import { tempDir } from "../helpers/key-store-file.js";

const keys = deriveStoreKeys(randomBytes(32));
const otherKeys = deriveStoreKeys(randomBytes(32));

const AT = "2030-01-01T00:00:00.000Z";
const A = "01J00000000000000000000001";
const B = "01J00000000000000000000002";
const C = "01J00000000000000000000003";
const GHOST = "01J0000000000000000000000Z";
const SEALED = { iv: new Uint8Array(12), ct: new Uint8Array([1, 2, 3]), tag: new Uint8Array(16) };

function recordOf(id: string, extra: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id,
    purpose: "otp",
    createdAt: AT,
    roundId: "round-1",
    participants: ["alice", "bob"],
    algorithm: "otp/v1",
    public: { digits: 6 },
    ...extra,
  };
}

function record(id: string, extra: Partial<KeyRecord> = {}) {
  return recordBody(recordOf(id, extra), SEALED);
}

/** A records line of `ids` (one round header); `carry`: leave the participants out. */
function records(ids: string[], extra: Partial<KeyRecord> = {}, carry = false) {
  return recordsBody(
    ids.map((id) => recordOf(id, extra)),
    ids.map(() => SEALED),
    carry,
  );
}

/** A records line's JSON with `change` applied to its body (for malformed ones). */
function recordsJson(ids: string[], change: (body: Record<string, unknown>) => void): string {
  const body = JSON.parse(JSON.stringify(records(ids))) as Record<string, unknown>;
  change(body);
  return JSON.stringify(body);
}

/** 26-character ULIDs 1..n after A's prefix. */
const ulids = (n: number) =>
  Array.from({ length: n }, (_, i) => `01J1${String(i + 1).padStart(22, "0")}`);

/** A record line that leaves its participants out (log-format.ts Carrier). */
function carried(id: string, extra: Partial<KeyRecord> = {}) {
  const { participants: _, ...body } = record(id, extra);
  return body;
}

const claimOf = (n: number): Claim => ({
  requester: "r",
  subject: `s${n}`,
  requestId: `q${n}`,
  claimedAt: AT,
  expiresAt: "2030-01-01T00:05:00.000Z",
});
const claim = (id: string, n = 1) => claimBody(id, claimOf(n));
const claims = (...ids: string[]) => claimsBody(ids.map((id, n) => ({ id, ...claimOf(n) })));
const consume = (id: string) => consumeBody(id, AT);
const consumes = (...ids: string[]) => consumesBody(AT, ids);
const step = (id: string, value: number) => stepBody(id, value, AT);
const lease = (...ids: string[]) => leaseBody("lease", ids);
const release = (...ids: string[]) => leaseBody("release", ids);
const unhold = (roundId: string) => unholdBody(roundId, AT);
const held = (id: string, roundId = "refill") => record(id, { roundId, held: true });
/** The claims above expire at 00:05; a retire line at `at`. */
const EXPIRED = "2030-01-01T00:05:00.000Z";
const retire = (at: string, ...ids: string[]) => retireBody(at, ids);
/** A round's secret (round-1 unless told), and a record with part `n` of it. */
const roundSecret = (roundId = "round-1") => roundSecretBody(roundId, SEALED);
const withPart = (id: string, n: number, extra: Partial<KeyRecord> = {}) =>
  recordBody(recordOf(id, extra), n);
/** A retire line that also lets round secrets go. */
const retireRounds = (at: string, ids: string[], rounds: string[]) => retireBody(at, ids, rounds);
const POINT = { lines: 7, head: "ab".repeat(32) };
const compacted = (from = POINT) => compactedBody(AT, from, 3, AT, 1);

/** Lines as the store writes them: `{"mac":…,"body":…}\n`, each MAC chained from the last. */
function chain(
  bodies: unknown[],
  macKey: Uint8Array = keys.mac,
): { lines: Buffer[]; macs: Buffer[] } {
  let previous: Uint8Array = CHAIN_START;
  const lines: Buffer[] = [];
  const macs: Buffer[] = [];
  for (const body of bodies) {
    const json = typeof body === "string" ? body : JSON.stringify(body);
    const mac = createHmac("sha256", macKey).update(previous).update(json).digest();
    lines.push(Buffer.from(`{"mac":"${mac.toString("hex")}","body":${json}}\n`));
    macs.push(mac);
    previous = mac;
  }
  return { lines, macs };
}

/** What a test compares: each record's state, what claimNext could take, and the rest. */
function summary(result: Extract<ReplayResult, { ok: true }>) {
  const records: Record<string, string[]> = {};
  for (const r of result.core.index.list()) {
    const facts: string[] = [];
    if (r.claim) facts.push(`claimed ${r.claim.requestId}`);
    if (r.consumedAt) facts.push("consumed");
    if (r.lastStep !== undefined) facts.push(`step ${r.lastStep}`);
    if (r.held) facts.push("held");
    if (result.core.isLeased(r.id)) facts.push("leased");
    records[r.id] = facts;
  }
  return {
    records,
    claimable: result.core.countClaimable("otp"),
    leaves: result.leaves.length,
    openings: [...result.openings.keys()],
    roundSecrets: [...result.roundSecrets.entries()].map(([id, { live }]) => `${id}:${live}`),
    lines: result.lines,
    voided: result.voided,
  };
}

type Expect =
  | { state: Partial<ReturnType<typeof summary>> }
  | { line: number; reason: RegExp }
  | "wrong-key";

interface Row {
  name: string;
  bodies: unknown[];
  /** Changes the chained lines before replay (a tampered, removed, torn line). */
  damage?: (lines: Buffer[]) => Buffer[];
  macKey?: Uint8Array;
  expect: Expect;
}

const rows: Row[] = [
  { name: "an empty file", bodies: [], expect: { state: { records: {}, lines: 0, claimable: 0 } } },
  {
    name: "a record, claimed, consumed; another left claimable",
    bodies: [record(A), record(B), claim(A), consume(A)],
    expect: {
      state: { records: { [A]: ["claimed q1", "consumed"], [B]: [] }, claimable: 1, lines: 4 },
    },
  },
  {
    name: "steps that only increase",
    bodies: [record(A), step(A, 5), step(A, 7)],
    expect: { state: { records: { [A]: ["step 7"] } } },
  },
  {
    name: "a held round, released by its unhold line",
    bodies: [held(A), held(B), record(C), unhold("refill")],
    expect: { state: { records: { [A]: [], [B]: [], [C]: [] }, claimable: 3 } },
  },
  {
    name: "a held round without its unhold line stays held",
    bodies: [held(A), record(B)],
    expect: { state: { records: { [A]: ["held"], [B]: [] }, claimable: 1 } },
  },
  {
    name: "a consumed held record stays withdrawn once released",
    bodies: [held(A), consume(A), unhold("refill")],
    expect: { state: { records: { [A]: ["consumed"] }, claimable: 0 } },
  },
  {
    name: "a lease claimed in part and released in part",
    bodies: [record(A), record(B), lease(A, B), claims(A), release(B)],
    expect: { state: { records: { [A]: ["claimed q0"], [B]: [] }, claimable: 1, voided: 0 } },
  },
  {
    name: "a lease never claimed nor released is void at the end",
    bodies: [record(A), record(B), record(C), lease(A, B), claims(A)],
    expect: {
      state: { records: { [A]: ["claimed q0"], [B]: [], [C]: [] }, claimable: 1, voided: 1 },
    },
  },
  {
    name: "a leased record consumed by id is no longer leased",
    bodies: [record(A), lease(A), consume(A)],
    expect: { state: { records: { [A]: ["consumed"] }, voided: 0 } },
  },
  {
    name: "log entries in order, an opening, a rollback describing the lines before it",
    bodies: [
      tlogBody(0, new Uint8Array([1])),
      tlogBody(1, new Uint8Array([2])),
      openingBody("round-1", SEALED),
    ],
    expect: { state: { leaves: 2, openings: ["round-1"], lines: 3 } },
  },
  {
    name: "a torn last line (no newline) is left out and named, whatever it holds",
    bodies: [record(A), record(B)],
    damage: (lines) => [lines[0]!, lines[1]!.subarray(0, 40)],
    expect: { state: { records: { [A]: [] }, lines: 1 } },
  },
  {
    name: "a torn tail of garbage after a sound line",
    bodies: [record(A)],
    damage: (lines) => [...lines, Buffer.from("\u0000\u0001not json")],
    expect: { state: { records: { [A]: [] }, lines: 1 } },
  },
  // MAC chain breaks.
  {
    name: "a changed body",
    bodies: [record(A), claim(A), consume(A)],
    damage: (lines) => [
      lines[0]!,
      Buffer.from(lines[1]!.toString().replace('"q1"', '"q2"')),
      lines[2]!,
    ],
    expect: { line: 2, reason: /MAC does not verify/ },
  },
  {
    name: "a line removed",
    bodies: [record(A), record(B), record(C)],
    damage: (lines) => [lines[0]!, lines[2]!],
    expect: { line: 2, reason: /MAC does not verify/ },
  },
  {
    name: "two lines swapped",
    bodies: [record(A), record(B), record(C)],
    damage: (lines) => [lines[0]!, lines[2]!, lines[1]!],
    expect: { line: 2, reason: /MAC does not verify/ },
  },
  {
    name: "a line that is not a key_store line",
    bodies: [record(A)],
    damage: (lines) => [...lines, Buffer.from("hello\n")],
    expect: { line: 2, reason: /not a key_store line/ },
  },
  {
    name: "line 1 changed while line 2 still chains from it: corruption at line 1",
    bodies: [record(A), record(B)],
    damage: (lines) => [
      Buffer.from(lines[0]!.toString().replace('"round-1"', '"round-2"')),
      lines[1]!,
    ],
    expect: { line: 1, reason: /MAC does not verify/ },
  },
  {
    name: "every line under another key",
    bodies: [record(A), record(B)],
    macKey: otherKeys.mac,
    expect: "wrong-key",
  },
  {
    name: "a one-line file under another key",
    bodies: [record(A)],
    macKey: otherKeys.mac,
    expect: "wrong-key",
  },
  // Schema.
  {
    name: "an unknown line type",
    bodies: [record(A), { t: "frobnicate", v: 1, id: A }],
    expect: { line: 2, reason: /unknown kind "frobnicate"/ },
  },
  {
    name: "a later format version",
    bodies: [{ ...record(A), v: 2 }],
    expect: { line: 1, reason: /format version 2/ },
  },
  {
    name: "a body that is not an object",
    bodies: ["[1,2]"],
    expect: { line: 1, reason: /not a JSON object/ },
  },
  // Record rules.
  {
    name: "a duplicate record id",
    bodies: [record(A), record(B), record(A)],
    expect: { line: 3, reason: new RegExp(`record ${A} appears a second time`) },
  },
  {
    name: "a claim of an unknown record",
    bodies: [record(A), claim(GHOST)],
    expect: { line: 2, reason: /claims record .* not stored before/ },
  },
  {
    name: "a claim before its record",
    bodies: [claim(A), record(A)],
    expect: { line: 1, reason: /not stored before/ },
  },
  {
    name: "a record claimed twice",
    bodies: [record(A), claim(A), claim(A, 2)],
    expect: { line: 3, reason: /claimed a second time/ },
  },
  {
    name: "a record claimed twice in one claims line",
    bodies: [record(A), claims(A, A)],
    expect: { line: 2, reason: /claimed a second time/ },
  },
  {
    name: "a claim of a held record",
    bodies: [held(A), claim(A)],
    expect: { line: 2, reason: /which is held/ },
  },
  {
    name: "a record consumed twice",
    bodies: [record(A), consume(A), consume(A)],
    expect: { line: 3, reason: /consumed a second time/ },
  },
  {
    name: "a consumption of an unknown record",
    bodies: [consume(A)],
    expect: { line: 1, reason: /consumes record .* not stored before/ },
  },
  {
    name: "an equal step",
    bodies: [record(A), step(A, 5), step(A, 5)],
    expect: { line: 3, reason: /step 5\b.*not above step 5\b/ },
  },
  {
    name: "a lower step",
    bodies: [record(A), step(A, 5), step(A, 3)],
    expect: { line: 3, reason: /step 3\b.*not above step 5\b/ },
  },
  {
    name: "a step of an unknown record",
    bodies: [step(A, 1)],
    expect: { line: 1, reason: /uses a step of record .* not stored before/ },
  },
  {
    name: "an unhold of a round with nothing held",
    bodies: [record(A), unhold("round-1")],
    expect: { line: 2, reason: /round round-1, which has no held record/ },
  },
  {
    name: "an unhold of an unknown round",
    bodies: [held(A), unhold("round-9")],
    expect: { line: 2, reason: /round round-9, which has no held record/ },
  },
  {
    name: "an unhold twice",
    bodies: [held(A), unhold("refill"), unhold("refill")],
    expect: { line: 3, reason: /no held record/ },
  },
  {
    name: "a lease of an unknown record",
    bodies: [record(A), lease(GHOST)],
    expect: { line: 2, reason: /leases record .* not stored before/ },
  },
  {
    name: "a lease twice",
    bodies: [record(A), lease(A), lease(A)],
    expect: { line: 3, reason: /leased already/ },
  },
  {
    name: "a lease of a claimed record",
    bodies: [record(A), claim(A), lease(A)],
    expect: { line: 3, reason: /leases record/ },
  },
  {
    name: "a lease of a held record",
    bodies: [held(A), lease(A)],
    expect: { line: 2, reason: /leases record/ },
  },
  {
    name: "a lease of an owned record",
    bodies: [record(A, { owner: "carol" }), lease(A)],
    expect: { line: 2, reason: /leases record/ },
  },
  {
    name: "a release of a record not leased",
    bodies: [record(A), release(A)],
    expect: { line: 2, reason: /not leased/ },
  },
  {
    name: "a release after the claim",
    bodies: [record(A), lease(A), claims(A), release(A)],
    expect: { line: 4, reason: /not leased/ },
  },
  {
    name: "a log entry skipped",
    bodies: [tlogBody(0, new Uint8Array([1])), tlogBody(2, new Uint8Array([2]))],
    expect: { line: 2, reason: /entry 2 where entry 1 is due/ },
  },
  {
    name: "a log entry repeated",
    bodies: [tlogBody(0, new Uint8Array([1])), tlogBody(0, new Uint8Array([1]))],
    expect: { line: 2, reason: /entry 0 where entry 1 is due/ },
  },
  {
    name: "an opening twice for a round",
    bodies: [openingBody("round-1", SEALED), openingBody("round-1", SEALED)],
    expect: { line: 2, reason: /opening appears a second time/ },
  },
  {
    name: "a rollback line describing the lines before it",
    bodies: [
      record(A),
      rollbackBody(
        AT,
        "shorter",
        { lines: 1, head: chain([record(A)]).macs[0]!.toString("hex") },
        { lines: 3, head: "00".repeat(32) },
      ),
    ],
    expect: { state: { records: { [A]: [] }, lines: 2 } },
  },
  {
    name: "a rollback line that does not describe the lines before it",
    bodies: [
      record(A),
      rollbackBody(
        AT,
        "shorter",
        { lines: 0, head: "00".repeat(32) },
        { lines: 3, head: "00".repeat(32) },
      ),
    ],
    expect: { line: 2, reason: /rollback record does not describe/ },
  },
  {
    name: "claimed OTPs retire once their claim expired, consumed or not; the rest stay",
    bodies: [
      record(A),
      record(B),
      record(C),
      claim(A),
      claim(B, 2),
      consume(B),
      retire(EXPIRED, A, B),
    ],
    expect: { state: { records: { [C]: [] }, claimable: 1, lines: 7 } },
  },
  {
    name: "an OTP consumed without a claim (withdrawn) retires at once",
    bodies: [record(A), consume(A), retire(AT, A)],
    expect: { state: { records: {}, claimable: 0 } },
  },
  {
    name: "a retire line before the claim expired is corruption",
    bodies: [record(A), claim(A), retire("2030-01-01T00:04:59.999Z", A)],
    expect: { line: 3, reason: /retires record .* not due to retire then/ },
  },
  {
    name: "a pooled (never claimed) OTP never retires",
    bodies: [record(A), retire(EXPIRED, A)],
    expect: { line: 2, reason: /not due to retire/ },
  },
  {
    name: "an owned record never retires",
    bodies: [record(A, { purpose: "totp", owner: "r" }), consume(A), retire(EXPIRED, A)],
    expect: { line: 3, reason: /not due to retire/ },
  },
  {
    name: "a line naming a retired record is corruption (it left for good)",
    bodies: [record(A), claim(A), retire(EXPIRED, A), consume(A)],
    expect: { line: 4, reason: /consumes record .* not stored before/ },
  },
  {
    name: "a retired record retired again is corruption",
    bodies: [record(A), claim(A), retire(EXPIRED, A), retire(EXPIRED, A)],
    expect: { line: 4, reason: /retires record/ },
  },
  {
    name: "records with parts of their round's secret, on record and records lines, beside one with its own",
    bodies: [
      roundSecret(),
      withPart(A, 0),
      recordsBody([recordOf(B), recordOf(C)], [1, SEALED]),
      roundSecret("round-2"),
    ],
    expect: {
      state: {
        records: { [A]: [], [B]: [], [C]: [] },
        roundSecrets: ["round-1:2", "round-2:0"],
        claimable: 3,
      },
    },
  },
  {
    name: "a round secret goes with its last record, named on the retire line that retires it",
    bodies: [
      roundSecret(),
      withPart(A, 0),
      withPart(B, 1),
      claim(A),
      claim(B, 2),
      retire(EXPIRED, A),
      retireRounds(EXPIRED, [B], ["round-1"]),
    ],
    expect: { state: { records: {}, roundSecrets: [] } },
  },
  {
    name: "a round secret named on a retire line while a record of it is live is corruption",
    bodies: [
      roundSecret(),
      withPart(A, 0),
      withPart(B, 1),
      claim(A),
      retireRounds(EXPIRED, [A], ["round-1"]),
    ],
    expect: {
      line: 5,
      reason: /retires round round-1's secret while a record of the round is live/,
    },
  },
  {
    name: "a retire line naming a round secret the file does not hold is corruption",
    bodies: [record(A), claim(A), retireRounds(EXPIRED, [A], ["round-1"])],
    expect: { line: 3, reason: /retires round round-1's secret, which the file does not hold/ },
  },
  {
    name: "a record with a part of a round secret no earlier line holds is corruption",
    bodies: [withPart(A, 0), roundSecret()],
    expect: { line: 1, reason: /part of round round-1's secret, which no earlier line holds/ },
  },
  {
    name: "a records entry with a part of another round's secret is corruption",
    bodies: [roundSecret("round-2"), recordsBody([recordOf(A), recordOf(B)], [SEALED, 0])],
    expect: { line: 2, reason: /part of round round-1's secret, which no earlier line holds/ },
  },
  {
    name: "a record with a part of a round secret that left is corruption",
    bodies: [
      roundSecret(),
      withPart(A, 0),
      claim(A),
      retireRounds(EXPIRED, [A], ["round-1"]),
      withPart(B, 1),
    ],
    expect: { line: 5, reason: /which no earlier line holds/ },
  },
  {
    name: "a round secret twice for a round is corruption",
    bodies: [roundSecret(), roundSecret()],
    expect: { line: 2, reason: /round round-1's secret appears a second time/ },
  },
  {
    name: "a round's opening is not its round secret",
    bodies: [openingBody("round-1", SEALED), withPart(A, 0)],
    expect: { line: 2, reason: /which no earlier line holds/ },
  },
  {
    name: "a compacted file: its first line, then a switched line",
    bodies: [compacted(), record(A), switchedBody({ lines: 9, head: "cd".repeat(32) }), record(B)],
    expect: { state: { records: { [A]: [], [B]: [] }, lines: 4 } },
  },
  {
    name: "a compacted line anywhere but first is corruption",
    bodies: [record(A), compacted()],
    expect: { line: 2, reason: /compacted record may only be the first line/ },
  },
  {
    name: "a switched line without a compacted first line is corruption",
    bodies: [record(A), switchedBody(POINT)],
    expect: { line: 2, reason: /switched record may only follow/ },
  },
  {
    name: "a second switched line is corruption",
    bodies: [compacted(), switchedBody(POINT), switchedBody(POINT)],
    expect: { line: 3, reason: /switched record may only follow/ },
  },
  {
    name: "a switched line naming fewer old lines than the compaction started from",
    bodies: [compacted(), switchedBody({ lines: 6, head: POINT.head })],
    expect: { line: 2, reason: /fewer old lines/ },
  },
  {
    name: "a consumes line consumes each record it names, as consume lines would",
    bodies: [record(A), record(B), record(C), claim(A), consumes(A, B)],
    expect: {
      state: {
        records: { [A]: ["claimed q1", "consumed"], [B]: ["consumed"], [C]: [] },
        claimable: 1,
        lines: 5,
      },
    },
  },
  {
    name: "a consumes line naming a record consumed before is corruption",
    bodies: [record(A), record(B), consume(A), consumes(B, A)],
    expect: { line: 4, reason: /record .* is consumed a second time/ },
  },
  {
    name: "a consumes line naming a record not stored before is corruption",
    bodies: [record(A), consumes(A, GHOST)],
    expect: { line: 2, reason: /consumes record .* not stored before/ },
  },
  {
    name: "a consumes line naming one record twice is corruption",
    bodies: [record(A), consumes(A, A)],
    expect: { line: 2, reason: /consumes body has a missing or malformed "ids"/ },
  },
  {
    name: "a consumes line with no ids is corruption",
    bodies: [record(A), consumes()],
    expect: { line: 2, reason: /consumes body has a missing or malformed "ids"/ },
  },
  {
    name: "a consumes line without its time is corruption",
    bodies: [record(A), { t: "consumes", v: 1, ids: [A] }],
    expect: { line: 2, reason: /consumes body has a missing or malformed "at"/ },
  },
  {
    name: "a consumes line with a field it does not have is corruption",
    bodies: [record(A), { ...consumes(A), id: A }],
    expect: { line: 2, reason: /consumes body has an unknown field "id"/ },
  },
  {
    name: "a record consumed by a consumes line retires at its consumption",
    bodies: [record(A), record(B), consumes(A, B), retire(AT, B)],
    expect: { state: { records: { [A]: ["consumed"] }, lines: 4 } },
  },
  {
    name: "a record line without participants before any record line with them is corruption",
    bodies: [carried(A)],
    expect: { line: 1, reason: /record .* leaves its participants out, but the last record line/ },
  },
  {
    name: "a record line without participants after one of another round is corruption",
    bodies: [record(A), record(B, { roundId: "round-2" }), carried(C)],
    expect: { line: 3, reason: /not of its round round-1/ },
  },
  {
    name: "a records line stores each of its records, as record lines would",
    bodies: [records([A, B, C]), claim(B)],
    expect: {
      state: { records: { [A]: [], [B]: ["claimed q1"], [C]: [] }, claimable: 2, lines: 2 },
    },
  },
  {
    name: "a records line of 256 records is read whole",
    bodies: [records(ulids(256))],
    expect: { state: { claimable: 256, lines: 1 } },
  },
  {
    name: "a records line of 257 records is corruption",
    bodies: [records(ulids(257))],
    expect: { line: 1, reason: /records body has a missing or malformed "records"/ },
  },
  {
    name: "a records line with no records is corruption",
    bodies: [
      recordsJson([A], (body) => {
        body.records = [];
      }),
    ],
    expect: { line: 1, reason: /records body has a missing or malformed "records"/ },
  },
  {
    name: "a records line's entry with an owner is corruption (owned records have record lines)",
    bodies: [
      recordsJson([A], (body) => {
        (body.records as Record<string, unknown>[])[0]!.owner = "rq:x";
      }),
    ],
    expect: { line: 1, reason: /records entry body has an unknown field "owner"/ },
  },
  ...([-1, 2 ** 32, 1.5, "0", null] as const).map(
    (part): Row => ({
      name: `a record's part ${JSON.stringify(part)} is corruption (an integer, 0 to 2^32 - 1)`,
      bodies: [roundSecret(), { ...withPart(A, 0), part }],
      expect: { line: 2, reason: /record body has a missing or malformed "part"/ },
    }),
  ),
  {
    name: "a record's greatest part, 2^32 - 1, is read",
    bodies: [roundSecret(), withPart(A, 2 ** 32 - 1)],
    expect: { state: { records: { [A]: [] }, roundSecrets: ["round-1:1"] } },
  },
  {
    name: "a record with both a secret and a part is corruption",
    bodies: [roundSecret(), { ...record(A), part: 0 }],
    expect: { line: 2, reason: /record body has a missing or malformed "part"/ },
  },
  {
    name: "a records entry with neither a secret nor a part is corruption",
    bodies: [
      recordsJson([A], (body) => {
        delete (body.records as Record<string, unknown>[])[0]!.secret;
      }),
    ],
    expect: { line: 1, reason: /records entry body has a missing or malformed "secret"/ },
  },
  ...([[], ["round-1", "round-1"], [""], "round-1"] as const).map(
    (rounds): Row => ({
      name: `a retire line's rounds ${JSON.stringify(rounds)} is corruption`,
      bodies: [roundSecret(), withPart(A, 0), claim(A), { ...retire(EXPIRED, A), rounds }],
      expect: { line: 4, reason: /retire body has a missing or malformed "rounds"/ },
    }),
  ),
  {
    name: 'a records line with "held": false is corruption',
    bodies: [
      recordsJson([A], (body) => {
        body.held = false;
      }),
    ],
    expect: { line: 1, reason: /records body has a missing or malformed "held"/ },
  },
  {
    name: "a records line naming a record stored before is corruption",
    bodies: [record(A), records([B, A])],
    expect: { line: 2, reason: new RegExp(`record ${A} appears a second time`) },
  },
  {
    name: "a records line without participants takes those of the record line before, of its round",
    bodies: [record(A), records([B, C], {}, true), claim(C)],
    expect: { state: { records: { [A]: [], [B]: [], [C]: ["claimed q1"] }, lines: 3 } },
  },
  {
    name: "a records line without participants after one of another round is corruption",
    bodies: [record(A), records([B, C], { roundId: "round-2" }, true)],
    expect: { line: 2, reason: /record .* leaves its participants out.*not of its round round-2/ },
  },
  {
    name: "a record line without participants after a records line of its round takes the line's",
    bodies: [records([A, B]), carried(C)],
    expect: { state: { claimable: 3, lines: 2 } },
  },
  {
    name: "a held records line's records are released together by the round's unhold line",
    bodies: [records([A, B], { roundId: "refill", held: true }), record(C), unhold("refill")],
    expect: { state: { records: { [A]: [], [B]: [], [C]: [] }, claimable: 3 } },
  },
  {
    name: "a held records line's records stay held without an unhold line",
    bodies: [records([A, B], { roundId: "refill", held: true })],
    expect: { state: { records: { [A]: ["held"], [B]: ["held"] }, claimable: 0 } },
  },
  {
    name: "a claims line's entries after the first take the fields they leave out from the one before",
    bodies: [record(A), record(B), record(C), claims(A, B, C)],
    expect: {
      state: {
        records: { [A]: ["claimed q0"], [B]: ["claimed q1"], [C]: ["claimed q2"] },
        claimable: 0,
      },
    },
  },
  {
    name: "a claims line whose first entry leaves out its requester is corruption",
    bodies: [
      record(A),
      JSON.stringify({
        t: "claims",
        v: 1,
        claims: [{ id: A, subject: "s", requestId: "q", claimedAt: AT, expiresAt: EXPIRED }],
      }),
    ],
    expect: { line: 2, reason: /claims entry body has a missing or malformed "requester"/ },
  },
  {
    name: "a claims line's later entry with a null requester is corruption (only an absent field takes the one before's)",
    bodies: [
      record(A),
      record(B),
      JSON.stringify({
        t: "claims",
        v: 1,
        claims: [
          {
            id: A,
            requester: "r",
            subject: "s",
            requestId: "q",
            claimedAt: AT,
            expiresAt: EXPIRED,
          },
          { id: B, requester: null, subject: "s", requestId: "q2" },
        ],
      }),
    ],
    expect: { line: 3, reason: /claims entry body has a missing or malformed "requester"/ },
  },
  {
    name: "a record line with participants that are not a list of names is corruption",
    bodies: [record(A, { participants: null as unknown as string[] })],
    expect: { line: 1, reason: /record body has a missing or malformed "participants"/ },
  },
];

for (const row of rows) {
  test(`replay: ${row.name}`, () => {
    const { lines } = chain(row.bodies, row.macKey);
    const file = Buffer.concat(row.damage ? row.damage(lines) : lines);
    const result = replay(keys, segmentsOf(file));
    if (row.expect === "wrong-key") {
      assert.deepEqual(result, { ok: false, kind: "wrong-key" });
    } else if ("state" in row.expect) {
      assert.ok(result.ok, `replays: ${result.ok ? "" : JSON.stringify(result)}`);
      const got = summary(result);
      for (const [key, value] of Object.entries(row.expect.state)) {
        assert.deepEqual(got[key as keyof typeof got], value, key);
      }
    } else {
      assert.equal(result.ok, false, "refused");
      assert.ok(!result.ok && result.kind === "corrupt");
      assert.equal(result.line, row.expect.line, result.reason);
      assert.match(result.reason, row.expect.reason);
    }
  });
}

test("a record line without participants has those of the last record line before it that has them, of its round, whatever lines come between", () => {
  const { lines } = chain([
    record(A, { participants: ["carol", "dave"] }),
    claim(A),
    carried(B),
    record(C, { roundId: "round-2" }),
    record(GHOST, { participants: ["erin"] }),
    carried("01J00000000000000000000004"),
  ]);
  const result = replay(keys, segmentsOf(Buffer.concat(lines)));
  assert.ok(result.ok, JSON.stringify(result));
  const participants = (id: string) => result.core.index.get(id)?.participants;
  assert.deepEqual(participants(B), ["carol", "dave"]);
  assert.deepEqual(participants(C), ["alice", "bob"]);
  assert.deepEqual(participants("01J00000000000000000000004"), ["erin"]);
  assert.deepEqual(result.carrier, { roundId: "round-1", participants: ["erin"] });
});

test("replay reports the verified size, the head MAC, the torn tail and the MAC at a watched line", () => {
  const { lines, macs } = chain([record(A), record(B), record(C)]);
  const torn = Buffer.from('{"mac":"ab');
  const file = Buffer.concat([...lines, torn]);
  const result = replay(keys, segmentsOf(file), 2);
  assert.ok(result.ok);
  assert.equal(result.lines, 3);
  assert.equal(result.size, lines[0]!.length + lines[1]!.length + lines[2]!.length);
  assert.deepEqual(Buffer.from(result.head), macs[2]);
  assert.deepEqual(Buffer.from(result.atWatch!), macs[1]);
  assert.deepEqual(
    [result.torn!.start, result.torn!.end, result.torn!.complete],
    [result.size, file.length, false],
  );
  const none = replay(keys, segmentsOf(file), 9);
  assert.ok(none.ok && none.atWatch === undefined, "a line past the end: no MAC");
  const empty = replay(keys, []);
  assert.ok(empty.ok && Buffer.from(empty.head).equals(Buffer.from(CHAIN_START)));
  const watched = replay(keys, [], 0);
  assert.ok(watched.ok);
  assert.deepEqual(watched.atWatch, CHAIN_START, "line 0: the chain's start");
});

test("a line longer than a key_store line may be is corruption at that line", () => {
  const { lines } = chain([record(A)]);
  const segments: Segment[] = [
    ...segmentsOf(lines[0]!),
    { bytes: undefined, start: lines[0]!.length, end: lines[0]!.length + 10, complete: true },
  ];
  const result = replay(keys, segments);
  assert.ok(!result.ok && result.kind === "corrupt" && result.line === 2);
  assert.match(result.reason, /longer than/);
});

test("segmentsOf splits bytes exactly as readSegments reads the file", async () => {
  const dir = await tempDir();
  try {
    const { lines } = chain([record(A), record(B), claim(A)]);
    for (const file of [
      Buffer.alloc(0),
      Buffer.concat(lines),
      Buffer.concat([...lines, Buffer.from("torn")]),
      Buffer.from("\n\nx\n"),
    ]) {
      const path = join(dir, "key_store");
      await writeFile(path, file);
      const handle = await open(path, "r");
      const read: Segment[] = [];
      try {
        for await (const segment of readSegments(handle)) read.push(segment);
      } finally {
        await handle.close();
      }
      assert.deepEqual(segmentsOf(file), read);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("claimsBody leaves out requester, claimedAt and expiresAt equal to the entry before's; expandClaims puts them back", () => {
  const later = "2030-01-01T00:00:00.001Z";
  const full = [
    { id: A, ...claimOf(1) },
    { id: B, ...claimOf(2) },
    { id: C, ...claimOf(3), requester: "other", claimedAt: later },
    { id: GHOST, ...claimOf(4), requester: "other", claimedAt: later },
  ];
  const body = claimsBody(full);
  assert.deepEqual(body.claims, [
    { id: A, requester: "r", subject: "s1", requestId: "q1", claimedAt: AT, expiresAt: EXPIRED },
    { id: B, subject: "s2", requestId: "q2" },
    { id: C, requester: "other", subject: "s3", requestId: "q3", claimedAt: later },
    { id: GHOST, subject: "s4", requestId: "q4" },
  ]);
  // The documented field order, the left-out fields simply absent.
  assert.equal(
    JSON.stringify(body.claims[2]),
    `{"id":"${C}","requester":"other","subject":"s3","requestId":"q3","claimedAt":"${later}"}`,
  );
  assert.deepEqual(expandClaims(body.claims), full);
});
