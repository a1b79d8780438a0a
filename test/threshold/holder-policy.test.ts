/**
 * A holder signs only what its policy allows (PROTOCOL §16.6), tested on the holder itself with
 * requests signed by the real server key: the server's signature, the key's owner, the signer set,
 * the deadline, one request per id, one package per attempt — and a DKG session is joined once.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ContributorSign } from "../../src/client/contributor-sign.js";
import { loadOrCreateContributorState } from "../../src/client/contributor-state.js";
import type { ServerKey } from "../../src/client/server-key.js";
import { ShareStore } from "../../src/client/share-store.js";
import { toBase64url } from "../../src/crypto/base64url.js";
import { serverSign } from "../../src/crypto/server-signature.js";
import { silentLogger } from "../../src/logging.js";
import type { AnyMessage, MessageOf } from "../../src/protocol/messages.js";
import { signRequestSignedData } from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import type { ServerIdentity } from "../../src/server/identity.js";
import { loadOrCreateServerIdentity } from "../../src/server/identity.js";
import { publicFromJson } from "../../src/threshold/codec.js";
import { aggregateSignature, verifyThresholdSignature } from "../../src/threshold/signing.js";
import type { Connection } from "../../src/transport/types.js";
import {
  startContributors,
  startTestServer,
  type TestServer,
  waitFor,
} from "../helpers/ceremony.js";

let server: TestServer;
let identity: ServerIdentity;
let keyId: string;
let groupKey: Buffer;
const holders: { sign: ContributorSign; store: ShareStore; index: number; sent: AnyMessage[] }[] =
  [];

before(async () => {
  server = await startTestServer();
  const contributors = await startContributors(server, 3);
  const admin = await server.admin();
  try {
    const key = await admin.thresholdKeygen({ suite: "ed25519", t: 2, n: 3 });
    keyId = key.id;
    groupKey = Buffer.from(key.groupPublicKey, "hex");
  } finally {
    admin.close();
  }
  identity = (await loadOrCreateServerIdentity(server.dataDir)).identity;
  for (const c of contributors) {
    await waitFor(() => c.events.some((e) => e.type === "dkg.completed"), 5000);
    const state = await loadOrCreateContributorState(c.dataDir);
    const store = new ShareStore(c.dataDir, state.privateKey);
    const file = (await store.read(keyId))!;
    const sent: AnyMessage[] = [];
    const sign = new ContributorSign({ shares: store, logger: silentLogger, emit: () => {} });
    holders.push({ sign, store, index: file.index, sent });
  }
  holders.sort((a, b) => a.index - b.index);
});
after(() => server?.cleanup());

const connection = (sent: AnyMessage[]) =>
  ({
    send: (frame: string) => sent.push(JSON.parse(frame) as AnyMessage),
  }) as unknown as Connection;
const serverKey = (): ServerKey => ({
  url: server.url,
  key: identity.publicKey,
  fingerprint: identity.fingerprint,
  challenge: new Uint8Array(32),
  pin: "matched",
});
const message = new TextEncoder().encode("transfer 1 unit");
let counter = 0;

/** A sign.request signed by the server key, with `over` applied before signing. */
function request(over: Partial<MessageOf<"sign.request">> = {}): MessageOf<"sign.request"> {
  const signIdBytes = new Uint8Array(16).fill(++counter);
  const msg: MessageOf<"sign.request"> = {
    type: "sign.request",
    v: PROTOCOL_VERSION,
    signId: toBase64url(signIdBytes),
    keyId,
    message: toBase64url(message),
    requester: "@admin",
    signers: [1, 2],
    deadline: new Date(Date.now() + 10_000).toISOString(),
    signature: "",
    ...over,
  };
  const data = signRequestSignedData(
    identity.fingerprint,
    Buffer.from(msg.signId, "base64url"),
    msg.keyId,
    Buffer.from(msg.message, "base64url"),
    msg.requester,
    msg.signers,
    msg.deadline,
  );
  return { ...msg, signature: toBase64url(serverSign(identity.privateKey, data)) };
}

async function answer(holder: (typeof holders)[number], msg: MessageOf<"sign.request">) {
  holder.sent.length = 0;
  await holder.sign.request(connection(holder.sent), serverKey(), msg);
  return holder.sent[0];
}

test("a request the server did not sign is ignored: no answer at all", async () => {
  const msg = request();
  const forged = { ...msg, requester: "rq:AAAAAAAAAAAAAAAAAAAAAA" };
  assert.equal(await answer(holders[0]!, forged), undefined);
});

test("a holder refuses a request from anyone but the key's owner, for a key it does not hold, with a bad signer set or late", async () => {
  const refusal = async (over: Partial<MessageOf<"sign.request">>) => {
    const reply = await answer(holders[0]!, request(over));
    assert.equal(reply?.type, "sign.refuse");
    return (reply as MessageOf<"sign.refuse">).reason;
  };
  assert.equal(await refusal({ requester: "rq:AAAAAAAAAAAAAAAAAAAAAA" }), "not-owner");
  assert.equal(await refusal({ keyId: "01ARZ3NDEKTSV4RRFFQ69G5FAV" }), "unknown-key");
  assert.equal(await refusal({ signers: [2, 3] }), "bad-signers");
  assert.equal(await refusal({ signers: [2, 1] }), "bad-signers");
  assert.equal(await refusal({ signers: [1] }), "bad-signers");
  assert.equal(await refusal({ deadline: new Date(Date.now() - 1).toISOString() }), "late");
});

test("one request per id, one package per attempt; then t holders' shares make a signature that verifies", async () => {
  const [one, two] = [holders[0]!, holders[1]!];
  const msg = request();
  const c1 = (await answer(one, msg)) as MessageOf<"sign.commit">;
  assert.equal(c1.type, "sign.commit");
  assert.equal(((await answer(one, msg)) as MessageOf<"sign.refuse">).reason, "replay");
  const c2 = (await answer(two, msg)) as MessageOf<"sign.commit">;
  const commitments = [
    { index: one.index, hiding: c1.hiding, binding: c1.binding },
    { index: two.index, hiding: c2.hiding, binding: c2.binding },
  ];
  // A package whose own commitment is not what the holder sent: refused, and its nonces are gone.
  one.sent.length = 0;
  const tampered = [{ ...commitments[0]!, hiding: c2.hiding }, commitments[1]!];
  await one.sign.package(connection(one.sent), {
    type: "sign.package",
    v: PROTOCOL_VERSION,
    signId: msg.signId,
    commitments: tampered,
  });
  assert.equal((one.sent[0] as MessageOf<"sign.refuse">).reason, "bad-package");
  one.sent.length = 0;
  await one.sign.package(connection(one.sent), {
    type: "sign.package",
    v: PROTOCOL_VERSION,
    signId: msg.signId,
    commitments,
  });
  assert.equal(one.sent.length, 0, "no second package for the same attempt");

  // A fresh attempt: both sign, the shares aggregate to a signature OpenSSL accepts.
  const fresh = request();
  const f1 = (await answer(one, fresh)) as MessageOf<"sign.commit">;
  const f2 = (await answer(two, fresh)) as MessageOf<"sign.commit">;
  const list = [
    { index: one.index, hiding: f1.hiding, binding: f1.binding },
    { index: two.index, hiding: f2.hiding, binding: f2.binding },
  ];
  const shares: Record<string, Uint8Array> = {};
  const file = (await one.store.read(keyId))!;
  for (const h of [one, two]) {
    h.sent.length = 0;
    await h.sign.package(connection(h.sent), {
      type: "sign.package",
      v: PROTOCOL_VERSION,
      signId: fresh.signId,
      commitments: list,
    });
    const share = h.sent[0] as MessageOf<"sign.share">;
    assert.equal(share.type, "sign.share");
    shares[file.identifiers[h.index - 1]!] = Buffer.from(share.share, "base64url");
  }
  const pub = publicFromJson(file.public, file.identifiers, file.t, file.n);
  const nobleList = list.map((c) => ({
    identifier: file.identifiers[c.index - 1]!,
    hiding: new Uint8Array(Buffer.from(c.hiding, "base64url")),
    binding: new Uint8Array(Buffer.from(c.binding, "base64url")),
  }));
  const signature = aggregateSignature("ed25519", pub, nobleList, message, shares);
  assert.ok(verifyThresholdSignature("ed25519", signature, message, groupKey));
  // Each holder logged what it signed (the message's hash), once.
  const log = (await readFile(join(one.store.dir, "signed.log"), "utf8")).trim().split("\n");
  assert.equal(log.length, 1);
  assert.equal(JSON.parse(log[0]!).signId, fresh.signId);
});

test("a DKG session id is taken part in once: a replayed invitation is refused", async () => {
  const store = holders[2]!.store;
  assert.equal(await store.claimSession("AAAA-session-id"), true);
  assert.equal(await store.claimSession("AAAA-session-id"), false);
  assert.equal(await store.claimSession("BBBB-session-id"), true);
});
