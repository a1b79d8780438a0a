/**
 * A record's audit (docs/PROTOCOL.md §15.6) on a real server: its owner fetches the record's
 * opening and what the server publishes about its round, and every step passes; an opening
 * tampered with — a phrase swapped, a content key changed, the server secret changed, a
 * contribution dropped — fails the step that checks it, named. Only the owner gets an opening;
 * a nonce record's is refused to everyone.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { auditRecord, type RecordAuditInput } from "../../src/audit/record-audit.js";
import { ErrorCodes } from "../../src/errors.js";
import type { JsonObject } from "../../src/json.js";
import { startContributors, startTestServer, type TestServer } from "../helpers/ceremony.js";
import { http, registerTestRequester, type TestRequester } from "../helpers/distribution.js";

let server: TestServer;
let owner: TestRequester;
let other: TestRequester;

before(async () => {
  server = await startTestServer({ quorum: 2 });
  await startContributors(server, 3);
  owner = await registerTestRequester(server, "owner");
  other = await registerTestRequester(server, "other");
});
after(() => server.cleanup());

async function generate(purpose: string, params: Record<string, unknown>, forName?: string) {
  const admin = await server.admin();
  try {
    return await admin.generate(purpose, params, forName);
  } finally {
    admin.close();
  }
}

/** Everything the audit of record `id` needs, as its owner gets it. */
async function gather(id: string): Promise<RecordAuditInput> {
  const { record, opening } = await owner.client.fetchOpening(id);
  const identity = (await http(server, "GET", "/v1/log/identity")).body;
  const checkpoint = (await http(server, "GET", "/v1/log/checkpoint")).text;
  const size = Number(checkpoint.split("\n")[1]);
  const proof = (
    await http(server, "GET", `/v1/log/proof/inclusion?roundId=${record.roundId}&size=${size}`)
  ).body;
  const index = proof.index as number;
  const entries = (await http(server, "GET", `/v1/log/entries?start=${index}&end=${index + 1}`))
    .body.entries as { leaf: string }[];
  return {
    record: { ...record, public: record.public as JsonObject },
    opening,
    identity,
    serverFingerprint: server.fingerprint,
    checkpoint,
    proof,
    leaf: new Uint8Array(Buffer.from(entries[0]!.leaf, "base64")),
  };
}

const statuses = (report: { steps: { step: string; status: string }[] }) =>
  Object.fromEntries(report.steps.map((s) => [s.step, s.status]));

/** The steps that did not pass. */
const failed = (report: { steps: { step: string; status: string }[] }) =>
  report.steps.filter((s) => s.status !== "passed").map((s) => `${s.step}:${s.status}`);

test("the owner's audit of a TOTP and an ECC record made for it passes every step", async () => {
  for (const [purpose, params] of [
    ["totp", { issuer: "ACME", account: "alice" }],
    ["ecc", { curve: "p256" }],
  ] as const) {
    const record = await generate(purpose, params, owner.name);
    const input = await gather(record.id);
    const report = await auditRecord(input);
    assert.deepEqual(failed(report), [], JSON.stringify(report.steps, null, 2));
    assert.equal(report.ok, true);
    assert.deepEqual(Object.keys(statuses(report)), [
      "identity",
      "checkpoint",
      "inclusion",
      "entry",
      "opening",
      "server-secret",
      "contributions",
      "completed",
      "derivation",
      "results",
    ]);
    assert.equal(report.contributors?.length, 3);
    assert.equal(report.server?.fingerprint, server.fingerprint);
    // No secret of the opening appears in the report.
    const text = JSON.stringify(report);
    const opening = input.opening as { serverSecret: string; contributions: JsonObject[] };
    for (const secret of [
      opening.serverSecret,
      ...opening.contributions.flatMap((c) => [c.phrase as string, c.contentKey as string]),
    ]) {
      assert.ok(!text.includes(secret), "a secret in the report");
    }
  }
});

test("a tampered opening fails the step that checks what was changed", async () => {
  const record = await generate("ecc", {}, owner.name);
  const input = await gather(record.id);
  assert.equal((await auditRecord(input)).ok, true);
  const tampered = async (
    change: (o: { serverSecret: string; contributions: JsonObject[] }) => void,
  ) => {
    const copy = structuredClone(input.opening) as {
      serverSecret: string;
      contributions: JsonObject[];
    };
    change(copy);
    return auditRecord({ ...input, opening: copy });
  };
  const flip = (hex: string) => (hex[0] === "0" ? "1" : "0") + hex.slice(1);

  // Two contributors' phrases swapped: neither envelope holds the phrase, the round secret differs.
  const swapped = await tampered((o) => {
    const [a, b] = o.contributions;
    [a!.phrase, b!.phrase] = [b!.phrase!, a!.phrase!];
  });
  assert.deepEqual(failed(swapped), [
    "contributions:failed",
    "derivation:failed",
    "results:failed",
  ]);
  assert.match(
    swapped.steps.find((s) => s.step === "contributions")!.message,
    /envelope does not hold the opening's phrase/,
  );

  // A content key changed: the envelope no longer opens (the phrase itself is still right).
  const rekeyed = await tampered((o) => {
    o.contributions[1]!.contentKey = flip(o.contributions[1]!.contentKey as string);
  });
  assert.deepEqual(failed(rekeyed), ["contributions:failed"]);
  assert.match(
    rekeyed.steps.find((s) => s.step === "contributions")!.message,
    /does not open under the opening's content key/,
  );

  // The server secret changed: not the committed one, and the round secret differs.
  const reSecret = await tampered((o) => {
    o.serverSecret = flip(o.serverSecret);
  });
  assert.deepEqual(failed(reSecret), [
    "server-secret:failed",
    "derivation:failed",
    "results:failed",
  ]);

  // A contribution dropped: the commit set has one the opening lacks.
  const dropped = await tampered((o) => {
    o.contributions.splice(2, 1);
  });
  assert.deepEqual(failed(dropped), [
    "contributions:failed",
    "derivation:failed",
    "results:failed",
  ]);
  assert.match(
    dropped.steps.find((s) => s.step === "contributions")!.message,
    /committed, but the opening has no contribution of it/,
  );

  // An envelope not the committed one (its ciphertext changed): its commitment differs.
  const reEnveloped = await tampered((o) => {
    const ct = o.contributions[0]!.ct as string;
    o.contributions[0]!.ct = (ct[0] === "A" ? "B" : "A") + ct.slice(1);
  });
  assert.match(
    reEnveloped.steps.find((s) => s.step === "contributions")!.message,
    /envelope is not the one it committed to/,
  );

  // Another server pinned; another record's public part; an entry's leaf changed.
  const pinned = await auditRecord({ ...input, serverFingerprint: other.fingerprint });
  assert.deepEqual(statuses(pinned).identity, "failed");
  assert.equal(statuses(pinned).checkpoint, "skipped");
  const otherPublic = await auditRecord({
    ...input,
    record: { ...input.record, public: { ...input.record.public, curve: "p384" } },
  });
  assert.deepEqual(failed(otherPublic), ["derivation:failed", "results:failed"]);
  const leaf = new Uint8Array(input.leaf);
  leaf.set([leaf[leaf.length - 3]! ^ 1], leaf.length - 3);
  const badLeaf = await auditRecord({ ...input, leaf });
  // A proof hash changed: the leaf no longer leads to the checkpoint's root.
  const proof = input.proof as { proof: string[] };
  assert.ok(proof.proof.length > 0);
  const otherHash = Buffer.alloc(32, 7).toString("base64");
  const badProof = await auditRecord({
    ...input,
    proof: { ...proof, proof: [otherHash, ...proof.proof.slice(1)] },
  });
  assert.deepEqual(failed(badProof), ["inclusion:failed"]);
  assert.equal(statuses(badLeaf).inclusion, "failed");
  assert.equal(statuses(badLeaf).entry, "failed");
});

test("only the owner gets an opening: another requester's record and an unknown id are 404, a nonce record is 403", async () => {
  const ecc = await generate("ecc", {}, owner.name);
  const nonce = await generate("nonce", {}, owner.name);
  const post = (credential: string, id: string) =>
    http(server, "POST", `/v1/keys/${id}/opening`, { credential, body: {} });
  const mine = await post(owner.credential, ecc.id);
  assert.equal(mine.status, 200, mine.text);
  assert.equal(mine.body.recordId, ecc.id);
  for (const [credential, id] of [
    [other.credential, ecc.id],
    [other.credential, nonce.id],
    [owner.credential, "01M86MVCHH2S3Y5K1BD73BT3PB"],
  ] as const) {
    const refused = await post(credential, id);
    assert.equal(refused.status, 404, refused.text);
    assert.equal((refused.body.error as { code: string }).code, ErrorCodes.NOT_FOUND);
  }
  const forbidden = await post(owner.credential, nonce.id);
  assert.equal(forbidden.status, 403, forbidden.text);
  assert.equal((forbidden.body.error as { code: string }).code, ErrorCodes.FORBIDDEN);
  await assert.rejects(other.client.fetchOpening(ecc.id), { code: ErrorCodes.NOT_FOUND });
});

test("a record whose round has no opening (made before openings were kept) is 404 'no opening'", async () => {
  // An owned record put straight into the store, as one from before openings were kept.
  const ecc = await generate("ecc", {}, owner.name);
  const stored = (await server.store.get(ecc.id))!;
  const old = await server.store.put({
    purpose: stored.purpose,
    roundId: "AAAAAAAAAAAAAAAAAAAAAA",
    participants: stored.participants,
    algorithm: stored.algorithm,
    public: stored.public,
    secret: await server.store.readSecret(ecc.id),
    owner: stored.owner!,
  });
  const answer = await http(server, "POST", `/v1/keys/${old.id}/opening`, {
    credential: owner.credential,
    body: {},
  });
  assert.equal(answer.status, 404, answer.text);
  assert.equal((answer.body.error as { code: string }).code, ErrorCodes.NOT_FOUND);
  assert.match((answer.body.error as { message: string }).message, /has no opening/);
});
