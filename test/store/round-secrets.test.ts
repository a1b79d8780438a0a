/**
 * Round secrets in the `key_store` file (issue 17: a batch round of OTPs keeps its secret once,
 * each record only its part): held in memory exactly while a live record has a part of them, in
 * the file while a record line with a part of them is, and the same after a reopen or a
 * compaction — checked against a plain model over random sequences of puts, claims,
 * consumptions, retirements, compactions and reopens (fast-check).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { FileKeyStore } from "../../src/store/file.js";
import type { RecordInput } from "../../src/store/types.js";
import { fuzzParameters } from "../helpers/fuzz.js";
import { bodies, fresh, input } from "../helpers/key-store-file.js";

const T0 = Date.parse("2030-01-01T00:00:00.000Z");
const TTL = 1000;
const RETAIN = 5000;
const ROUNDS = ["r0", "r1", "r2"];

const ops = fc.array(
  fc.oneof(
    { weight: 2, arbitrary: fc.record({ op: fc.constant("secret" as const), round: fc.nat(2) }) },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("put" as const),
        round: fc.nat(2),
        count: fc.integer({ min: 1, max: 4 }),
        // Mostly parts of the round's secret, now and then a record with its own.
        own: fc.nat(3).map((n) => n === 0),
      }),
    },
    {
      weight: 5,
      arbitrary: fc.record({
        op: fc.constant("claim" as const),
        ttl: fc.integer({ min: 1, max: 2 * TTL }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("consume" as const), pick: fc.nat() }) },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant("tick" as const),
        ms: fc.integer({ min: 0, max: 4 * TTL }),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ op: "compact" as const }) },
    { weight: 1, arbitrary: fc.constant({ op: "reopen" as const }) },
  ),
  { minLength: 20, maxLength: 60 },
);

/** The model: each round's secret (while held) and each live record's round and part. */
interface Model {
  secrets: Map<string, Uint8Array>;
  /** Rounds a record with a part of their secret was put for (since the secret was put). */
  used: Set<string>;
  live: Map<string, { round: string; part: number | undefined }>;
}

test("round secrets: held exactly while a live record has a part of one, read back right, across retirements, compactions and reopens (fast-check)", async () => {
  await fc.assert(
    fc.asyncProperty(ops, async (sequence) => {
      let now = T0;
      const f = await fresh({
        clock: () => new Date(now),
        retireEveryMs: 0,
        retireGraceMs: 0,
        retainUsedMs: RETAIN,
        compactAtBytes: Number.POSITIVE_INFINITY,
        leaseSize: 2,
      });
      let store: FileKeyStore = f.make();
      await store.open();
      const model: Model = { secrets: new Map(), used: new Set(), live: new Map() };
      let nextPart = 0;
      let claims = 0;
      try {
        for (const step of sequence) {
          switch (step.op) {
            case "secret": {
              const round = ROUNDS[step.round]!;
              const bytes = new Uint8Array([step.round, nextPart++ & 0xff]);
              if (model.secrets.has(round)) {
                await assert.rejects(
                  store.putRoundSecret(round, bytes),
                  /already has a round secret/,
                );
              } else {
                await store.putRoundSecret(round, bytes);
                model.secrets.set(round, bytes);
              }
              break;
            }
            case "put": {
              const round = ROUNDS[step.round]!;
              const { secret, ...rest } = input({ roundId: round });
              const puts: Promise<unknown>[] = [];
              for (let i = 0; i < step.count; i++) {
                const part = nextPart++;
                const put: RecordInput = step.own
                  ? { ...rest, secret }
                  : { ...rest, roundPart: part };
                if (!step.own && !model.secrets.has(round)) {
                  await assert.rejects(store.put(put), /has no round secret/);
                  continue;
                }
                // Put in one turn: a records line, as a batch round's are.
                puts.push(
                  store.put(put).then((record) => {
                    model.live.set(record.id, { round, part: step.own ? undefined : part });
                    if (!step.own) model.used.add(round);
                  }),
                );
              }
              await Promise.all(puts);
              break;
            }
            case "claim": {
              const claimed = await store.claimNext(
                "otp",
                {
                  requester: "rq",
                  subject: `s${claims % 3}`,
                  requestId: `q${claims++}`,
                  expiresAt: new Date(now + step.ttl),
                },
                { ack: claims % 2 === 0 ? "reserved" : "durable" },
              );
              if (claimed) assert.ok(model.live.has(claimed.id));
              break;
            }
            case "consume": {
              const ids = [...model.live.keys()];
              if (ids.length > 0) await store.consume(ids[step.pick % ids.length]!);
              break;
            }
            case "tick": {
              now += step.ms;
              await store.retireDue();
              for (const id of [...model.live.keys()]) {
                if (!(await store.get(id))) model.live.delete(id);
              }
              // A round's secret goes with the last live record with a part of it.
              for (const round of [...model.secrets.keys()]) {
                const parts = [...model.live.values()].filter(
                  (r) => r.round === round && r.part !== undefined,
                );
                if (model.used.has(round) && parts.length === 0) {
                  model.secrets.delete(round);
                  model.used.delete(round);
                }
              }
              break;
            }
            case "compact":
              await store.compact();
              break;
            case "reopen":
              await store.close();
              store = f.make();
              await store.open();
              break;
          }
          // Every live record reads back its own secret or its round's secret and part.
          for (const [id, { round, part }] of model.live) {
            const read = await store.readSecretPart(id);
            if (part === undefined) assert.equal(read.kind, "own");
            else
              assert.deepEqual(read, {
                kind: "round",
                roundSecret: model.secrets.get(round),
                roundPart: part,
              });
          }
          // Held exactly while a live record has a part of it (or none has had one yet).
          assert.equal(store.roundSecretsHeld, model.secrets.size);
        }
        // The file: a roundsecret line for a round while a record line with a part of it is kept.
        await store.close();
        const lines = await bodies(f.path);
        const partRounds = new Set<string>();
        for (const b of lines) {
          if (b.t === "record" && b.part !== undefined) partRounds.add(b.roundId as string);
          if (
            b.t === "records" &&
            (b.records as { part?: number }[]).some((e) => e.part !== undefined)
          ) {
            partRounds.add(b.roundId as string);
          }
        }
        const secretRounds = new Set(
          lines.filter((b) => b.t === "roundsecret").map((b) => b.roundId),
        );
        for (const round of partRounds)
          assert.ok(secretRounds.has(round), `${round}'s secret is in the file`);
        store = f.make();
        await store.open();
        assert.equal(store.liveRecords, model.live.size);
      } finally {
        await store.close();
        await f.remove();
      }
    }),
    fuzzParameters(15, 0.001),
  );
});

test("round secrets: a round's secret put again after its first let go survives a compaction past the first's retirement (found by the model above)", async () => {
  let now = T0;
  const f = await fresh({
    clock: () => new Date(now),
    retireEveryMs: 0,
    retireGraceMs: 0,
    retainUsedMs: RETAIN,
    compactAtBytes: Number.POSITIVE_INFINITY,
  });
  let store = f.make();
  await store.open();
  try {
    const { secret: _own, ...rest } = input({ roundId: "r0" });
    await store.putRoundSecret("r0", new Uint8Array([1]));
    const first = await store.put({ ...rest, roundPart: 0 });
    await store.consume(first.id);
    now += 1;
    assert.equal(await store.retireDue(), 1);
    assert.equal(store.roundSecretsHeld, 0);
    // The same round id again: a new secret, its own roundsecret line after the retire line.
    await store.putRoundSecret("r0", new Uint8Array([2]));
    const second = await store.put({ ...rest, roundPart: 7 });
    now += RETAIN + 1;
    await store.compact();
    await store.close();
    store = f.make();
    await store.open();
    assert.equal(await store.get(first.id), undefined);
    assert.equal(store.roundSecretsHeld, 1);
    assert.deepEqual(await store.readSecretPart(second.id), {
      kind: "round",
      roundSecret: new Uint8Array([2]),
      roundPart: 7,
    });
    const kinds = (await bodies(f.path)).filter((b) => b.t === "roundsecret");
    assert.equal(kinds.length, 1, "only the second roundsecret line is copied");
  } finally {
    await store.close();
    await f.remove();
  }
});
