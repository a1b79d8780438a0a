/**
 * Key store lookups: what a verification costs as the `key_store` file grows. An OTP verification
 * looks up the subject's latest claimed codes (`list({purpose, claimedBy, subject, latestClaims})`,
 * as routes/otp.ts does), a TOTP verification
 * the account's enrollment (`list({purpose, owner, subject})`). Both must stay flat as the store
 * grows to hundreds of thousands of records (a warm OTP pool alone can hold that many), so they
 * read the store's subject index, not every record. Baseline: `get(id)`, one map lookup and a
 * copy, in the same store in the same run.
 *
 * Then (issue 12 §6, `benchForeignClaims`) the TOTP lookup of one account while other requesters
 * claim more and more OTPs for the same subject: it reads the owner's records for the subject
 * (the (owner, subject) index), so it stays flat; reading the subject's whole index entry (what it
 * read before) is shown beside it.
 */

import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LATEST_CODES } from "../src/server/distribution/verification/verifier.js";
import { FileKeyStore } from "../src/store/file.js";
import type { KeyRecord } from "../src/store/types.js";
import { median, ratio, table } from "./stats.js";

export interface StoreBenchOptions {
  /** Store sizes (OTP records) to measure at. */
  sizes?: number[];
  /** Subjects with claimed codes, and TOTP enrollments (one owner), at every size. */
  subjects?: number;
  lookups?: number;
  /** OTPs other requesters have claimed for the enrolled subject, at each step (first 0). */
  foreignClaims?: number[];
  progress?: (line: string) => void;
}

interface Row {
  size: number;
  getUs: number;
  otpUs: number;
  totpUs: number;
}

const PUT_BATCH = 2_000;

async function timeLookups(
  count: number,
  lookup: (i: number) => Promise<unknown>,
): Promise<number> {
  for (let i = 0; i < 50; i++) await lookup(i);
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    await lookup(i);
    times.push(Number(process.hrtime.bigint() - start) / 1e3);
  }
  return median(times);
}

export async function benchStore(options: StoreBenchOptions = {}): Promise<{ report: string }> {
  const sizes = options.sizes ?? [1_000, 10_000, 100_000];
  const subjects = options.subjects ?? 500;
  const lookups = options.lookups ?? 1_000;
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-bench-store-"));
  const store = new FileKeyStore({ path: join(dir, "key_store"), storeKey: randomBytes(32) });
  const rows: Row[] = [];
  const history: Array<{ claims: number; latestUs: number; wholeUs: number }> = [];
  try {
    await store.open();
    const secret = randomBytes(64);
    const otp = (i: number) => otpInput(i, secret);
    // The subjects' claimed codes and enrollments are made first, so they are the oldest records
    // and a scan would have to pass every later one to be sure it found them all.
    const ids: string[] = [];
    for (let i = 0; i < subjects; i++) {
      const record: KeyRecord = await store.put({
        purpose: "totp",
        roundId: `enroll-${i}`,
        participants: ["contributor-a", "contributor-b"],
        algorithm: "totp/v1",
        public: { account: `user-${i}` },
        owner: "relying-service",
        subject: `user-${i}`,
        secret,
      });
      ids.push(record.id);
      await store.put(otp(i));
      await store.claimNext("otp", {
        requester: "relying-service",
        subject: `user-${i}`,
        requestId: `request-${i}`,
        expiresAt: new Date(Date.now() + 3_600_000),
      });
    }
    let held = subjects;
    for (const size of sizes) {
      options.progress?.(`growing the key_store file to ${size} OTP records`);
      while (held < size) {
        const batch = Math.min(PUT_BATCH, size - held);
        await Promise.all(Array.from({ length: batch }, (_, k) => store.put(otp(held + k))));
        held += batch;
      }
      const subject = (i: number) => `user-${(i * 7919) % subjects}`;
      rows.push({
        size,
        getUs: await timeLookups(lookups, (i) => store.get(ids[i % subjects]!)),
        otpUs: await timeLookups(lookups, (i) =>
          store.list({
            purpose: "otp",
            claimedBy: "relying-service",
            subject: subject(i),
            latestClaims: LATEST_CODES,
          }),
        ),
        totpUs: await timeLookups(lookups, (i) =>
          store.list({ purpose: "totp", owner: "relying-service", subject: subject(i) }),
        ),
      });
    }
    // One subject with a long history (a service that never names a subject gets its own name as
    // every OTP's subject): the verification reads its 16 latest claims; reading the whole history
    // (what it did before) is the baseline.
    let claims = 0;
    for (const target of [100, 1_000, 10_000]) {
      options.progress?.(`claiming ${target} OTPs for one subject`);
      while (claims < target) {
        const batch = Math.min(PUT_BATCH, target - claims);
        await Promise.all(
          Array.from({ length: batch }, (_, k) =>
            store.claimNext(
              "otp",
              {
                requester: "relying-service",
                subject: "busy",
                requestId: `busy-${claims + k}`,
                expiresAt: new Date(Date.now() + 3_600_000),
              },
              { ack: "reserved" },
            ),
          ),
        );
        claims += batch;
      }
      const few = Math.max(20, Math.floor(lookups / (target / 100)));
      history.push({
        claims: target,
        latestUs: await timeLookups(lookups, () =>
          store.list({
            purpose: "otp",
            claimedBy: "relying-service",
            subject: "busy",
            latestClaims: LATEST_CODES,
          }),
        ),
        wholeUs: await timeLookups(few, () =>
          store.list({ purpose: "otp", claimed: true, subject: "busy" }),
        ),
      });
    }
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
  const first = rows[0]!;
  const us = (x: number) => `${x.toFixed(1)} µs`;
  const report = [
    `Verification lookups in the key_store file (${subjects} subjects with a claimed OTP and a TOTP`,
    `enrollment, the rest a ready pool); medians of ${lookups} lookups; baseline get(id) in the same store`,
    "",
    table(
      [
        "OTP records",
        "get(id)",
        "OTP verify lookup",
        "÷ get",
        "TOTP verify lookup",
        "÷ get",
        `OTP lookup ÷ at ${first.size}`,
      ],
      rows.map((r) => [
        String(r.size),
        us(r.getUs),
        us(r.otpUs),
        ratio(r.otpUs / r.getUs),
        us(r.totpUs),
        ratio(r.totpUs / r.getUs),
        ratio(r.otpUs / first.otpUs),
      ]),
    ),
    "",
    "A lookup reads the subject's index entry, so its cost does not grow with the store (last column ≈ 1×).",
    "",
    "One subject with a long history: the OTP verification reads its 16 latest claims; baseline: reading them all",
    "",
    table(
      ["claims for the subject", "16 latest", "whole history (baseline)", "÷ baseline"],
      history.map((h) => [
        String(h.claims),
        us(h.latestUs),
        us(h.wholeUs),
        ratio(h.latestUs / h.wholeUs),
      ]),
    ),
    "",
    await benchForeignClaims(options),
  ].join("\n");
  return { report };
}

const otpInput = (i: number, secret: Uint8Array) => ({
  purpose: "otp",
  roundId: `round-${Math.floor(i / 256)}`,
  participants: ["contributor-a", "contributor-b", "contributor-c"],
  algorithm: "otp/v1",
  public: { digits: 6 },
  secret,
});

/**
 * One account's TOTP lookup (`list({purpose, owner, subject})`, as two-factor.ts makes it) while
 * other requesters claim OTPs for the same subject, in a key_store file of its own: the owner
 * has 500 enrollments, and each step puts and claims more OTPs for the subject (50 requesters,
 * claimed as the OTP pool claims). Baselines in the same store and run: `get(id)` of the
 * enrollment, and the lookup at 0 foreign claims; beside them, `list({purpose, subject})`, which
 * reads the subject's whole index entry, as the owner's lookup did before.
 */
export async function benchForeignClaims(options: StoreBenchOptions = {}): Promise<string> {
  const steps = options.foreignClaims ?? [0, 1_000, 10_000, 100_000];
  const lookups = options.lookups ?? 1_000;
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-bench-foreign-"));
  const store = new FileKeyStore({ path: join(dir, "key_store"), storeKey: randomBytes(32) });
  const owner = "relying-service";
  const rows: Array<{ claims: number; getUs: number; totpUs: number; subjectUs: number }> = [];
  try {
    await store.open();
    const secret = randomBytes(64);
    const enroll = (account: string) =>
      store.put({
        purpose: "totp",
        roundId: `enroll-${account}`,
        participants: ["contributor-a", "contributor-b"],
        algorithm: "totp/v1",
        public: { account },
        owner,
        subject: account,
        secret,
      });
    for (let i = 0; i < 500; i++) await enroll(`user-${i}`);
    const enrolled = await enroll("shared");
    const lookup = () => store.list({ purpose: "totp", owner, subject: "shared" });
    // Warmed up once, untimed, so the first step is not the one that pays for compilation.
    await timeLookups(lookups, () => store.get(enrolled.id));
    await timeLookups(lookups, lookup);
    let claims = 0;
    for (const target of steps) {
      if (target > claims) options.progress?.(`claiming ${target} OTPs for the enrolled subject`);
      while (claims < target) {
        const batch = Math.min(PUT_BATCH, target - claims);
        const from = claims;
        await Promise.all(
          Array.from({ length: batch }, (_, k) => store.put(otpInput(from + k, secret))),
        );
        await Promise.all(
          Array.from({ length: batch }, (_, k) =>
            store.claimNext(
              "otp",
              {
                requester: `requester-${(from + k) % 50}`,
                subject: "shared",
                requestId: `foreign-${from + k}`,
                expiresAt: new Date(Date.now() + 3_600_000),
              },
              { ack: "reserved" },
            ),
          ),
        );
        claims += batch;
      }
      const few = Math.max(20, Math.floor(lookups / Math.max(1, target / 1_000)));
      rows.push({
        claims: target,
        getUs: await timeLookups(lookups, () => store.get(enrolled.id)),
        totpUs: await timeLookups(lookups, lookup),
        subjectUs: await timeLookups(few, () => store.list({ purpose: "totp", subject: "shared" })),
      });
    }
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
  const first = rows[0]!;
  const us = (x: number) => `${x.toFixed(1)} µs`;
  return [
    "One account's TOTP lookup while other requesters claim OTPs for the same subject (issue 12 §6; the owner",
    `has 500 enrollments; medians of ${lookups}); baselines: get(id) and the lookup at ${first.claims} claims, same store`,
    "",
    table(
      [
        "foreign claims",
        "get(id)",
        "TOTP lookup (owner, subject)",
        "÷ get",
        `÷ at ${first.claims}`,
        "whole subject entry (before)",
        "÷ get",
      ],
      rows.map((r) => [
        String(r.claims),
        us(r.getUs),
        us(r.totpUs),
        ratio(r.totpUs / r.getUs),
        ratio(r.totpUs / first.totpUs),
        us(r.subjectUs),
        ratio(r.subjectUs / r.getUs),
      ]),
    ),
    "",
    "The lookup reads the owner's records for the subject, not the subject's claims: its ratio to get(id) stays the",
    "same at every step (÷ at 0 about 1× or below), where reading the subject's whole entry grows with the claims.",
  ].join("\n");
}
