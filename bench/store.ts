/**
 * Key store lookups: what a verification costs as the `key_store` file grows. An OTP verification
 * looks up the subject's claimed codes (`list({purpose, claimed, subject})`), a TOTP verification
 * the account's enrollment (`list({purpose, owner, subject})`). Both must stay flat as the store
 * grows to hundreds of thousands of records (a warm OTP pool alone can hold that many), so they
 * read the store's subject index, not every record. Baseline: `get(id)`, one map lookup and a
 * copy, in the same store in the same run.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileKeyStore } from "../src/store/file.js";
import type { KeyRecord } from "../src/store/types.js";
import { median, ratio, table } from "./stats.js";

export interface StoreBenchOptions {
  /** Store sizes (OTP records) to measure at. */
  sizes?: number[];
  /** Subjects with claimed codes, and TOTP enrollments (one owner), at every size. */
  subjects?: number;
  lookups?: number;
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
  try {
    await store.open();
    const secret = randomBytes(64);
    const otp = (i: number) => ({
      purpose: "otp",
      roundId: `round-${Math.floor(i / 256)}`,
      participants: ["contributor-a", "contributor-b", "contributor-c"],
      algorithm: "otp/v1",
      public: { digits: 6 },
      secret,
    });
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
          store.list({ purpose: "otp", claimed: true, subject: subject(i) }),
        ),
        totpUs: await timeLookups(lookups, (i) =>
          store.list({ purpose: "totp", owner: "relying-service", subject: subject(i) }),
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
  ].join("\n");
  return { report };
}
