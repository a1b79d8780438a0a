/**
 * `dkeygen demo`: the whole product on one machine, on real loopback sockets, in a fresh data
 * folder: a key generation server, three enrolled contributors and a requesting client. The client
 * asks for an OTP; none is ready, so the server runs a round for it with the three contributors,
 * stores the result and hands that very OTP over, sealed to the client's key; the client then
 * verifies it (once). Every step is shown as it happens, and the demo checks that the OTP
 * delivered is the one the round stored. Then anyone audits the log of rounds, and the three
 * contributors make a 2-of-3 Taproot key together that two of them sign with. Exits 0 when all of
 * it worked; `--keep` keeps the folder.
 */

import { createHash, type KeyObject } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { schnorr } from "@noble/curves/secp256k1.js";
import type { Command } from "commander";
import { type AuditReport, auditLog } from "../../audit/log-audit.js";
import { Contributor } from "../../client/contributor.js";
import { loadOrCreateContributorState } from "../../client/contributor-state.js";
import { EntropyPool } from "../../client/entropy.js";
import { PinStore } from "../../client/pins.js";
import { RequesterClient } from "../../client/requester.js";
import { loadOrCreateRequesterKeys } from "../../client/requester-state.js";
import { witnessIdentity } from "../../client/witness.js";
import { Secret } from "../../crypto/secret.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { silentLogger } from "../../logging.js";
import { parseDkgEntry } from "../../protocol/dkg-log-entry.js";
import { issueEnrollmentToken } from "../../server/enrollment.js";
import { addRequester } from "../../server/requesters.js";
import { startServer } from "../../server/runtime.js";
import { ADMIN_OWNER } from "../../server/server-context.js";
import type { KeyRecord } from "../../store/types.js";
import { verifyDkgEntry } from "../../threshold/session-entry.js";
import { serverSource } from "./audit.js";

/**
 * Step 9: a key no machine holds. The three contributors run a distributed key generation (the
 * server only relays their signed packages and sealed shares), then two of them sign with it,
 * and the signature is checked as Bitcoin checks a Taproot key-path spend (BIP 340).
 */
async function thresholdKey(
  say: (line: string) => void,
  running: Awaited<ReturnType<typeof startServer>>,
  names: Map<string, string>,
): Promise<void> {
  say("[9] a 2-of-3 Taproot key made by the three contributors together (FROST DKG)");
  const record = await running.server.thresholdKeygen({
    suite: "secp256k1-tr",
    t: 2,
    n: 3,
    owner: ADMIN_OWNER,
  });
  const key = record.public as { groupPublicKey: string; outputKey: string; address: string };
  say("    each committed to a polynomial of its own and sent every other one its share, sealed");
  say(
    "    to that one's key: the server relayed only ciphertexts, and all three signed the result",
  );
  say(`    key          ${record.id}`);
  say(`    output key   ${key.outputKey}  (BIP 86)`);
  say(`    address      ${key.address}  (P2TR: spendable by any 2 of them, by no one alone)`);
  say("    the private key exists nowhere: each keeps a share, sealed at rest; the server none");
  // The session is in the public log before any holder kept its share: read it as anyone would.
  const index = running.server.log.indexOf(record.roundId);
  const answer = (await (
    await fetch(`${running.httpUrl}/v1/log/entries?start=${index}&end=${(index ?? 0) + 1}`)
  ).json()) as { entries: { leaf: string }[] };
  const entry = parseDkgEntry(new Uint8Array(Buffer.from(answer.entries[0]!.leaf, "base64")));
  verifyDkgEntry(entry, running.fingerprint);
  say(
    `    logged as entry ${index}: its session id and all ${entry.n} holders' signatures of the ` +
      "result check from the public log alone (which shows no key, no address)",
  );
  const message = createHash("sha256")
    .update("dkeygen demo: spend from the 2-of-3 wallet")
    .digest();
  const { signature, signers } = await running.server.thresholdSign(record, message, ADMIN_OWNER);
  const valid = schnorr.verify(signature, message, Buffer.from(key.outputKey, "hex"));
  say(
    `    signed by ${signers.map((id) => names.get(id) ?? id).join(" and ")} (FROST, RFC 9591): ` +
      `BIP 340 signature ${valid ? "valid" : "INVALID"} under the output key`,
  );
  if (!valid)
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      "The demo's threshold signature does not verify.",
    );
}

/** Three contributors, each with another secret phrase generator from the registry. */
const CONTRIBUTORS = [
  ["alice", "hmac-sha512"],
  ["bob", "blake2b-512-keyed"],
  ["carol", "kmac256"],
] as const;

const SUBJECT = "alice@example.com";

export async function runDemo(options: { keep?: boolean; out?: NodeJS.WritableStream } = {}) {
  const out = options.out ?? process.stdout;
  const say = (line: string) => out.write(`${line}\n`);
  const started = performance.now();
  const root = await mkdtemp(join(tmpdir(), "dkeygen-demo-"));
  // Its folder holds keys (server, store, contributors' shares): Ctrl-C ends the process at once
  // (cli/signals.ts), and takes the folder with it unless --keep.
  const removeAtExit = () => rmSync(root, { recursive: true, force: true });
  if (!options.keep) process.once("exit", removeAtExit);
  const serverDir = join(root, "server");
  const contributors: Contributor[] = [];
  const contributorStates: { contributorId: string; publicKey: KeyObject }[] = [];
  let running: Awaited<ReturnType<typeof startServer>> | undefined;
  say("dkeygen demo: one OTP, from a round with three contributors to its verification");
  say(
    `data folder ${root}${options.keep ? " (kept: --keep)" : " (removed at the end; --keep keeps it)"}\n`,
  );
  try {
    running = await startServer({
      dataDir: serverDir,
      port: 0,
      logger: silentLogger,
      http: { port: 0 },
      // No OTPs made ahead: the request below makes the server run its round for it.
      otpPool: { size: 0 },
    });
    say("[1] key generation server started");
    say(`    fingerprint  ${running.fingerprint}  (new RSA-3072 key)`);
    say(`    listening    ${running.url}`);
    say(`    distribution ${running.httpUrl}`);

    const names = new Map<string, string>();
    let stored: KeyRecord | undefined;
    running.server.onEvent((event) => {
      switch (event.type) {
        case "round.opened":
          say(`    round ${event.roundId} opened for ${event.purpose}`);
          say(
            `    seed phrase (${event.seedBits} bits, OS CSPRNG) sent to ${event.participants} contributors`,
          );
          say(
            `    server secret committed (SHA-256 ${event.serverCommitment.slice(0, 16)}…), never sent; invitation signed, naming the round's own Ed25519 key (for its commit set, receipts and closing)`,
          );
          break;
        case "commit.accepted":
          say(
            `    commitment from ${names.get(event.contributorId) ?? event.contributorId}: ` +
              "a signed hash of its sealed contribution (nothing to decrypt yet)",
          );
          break;
        case "round.committed":
          say(
            `    commit set of ${event.commits} signed and sent (SHA-256 ${event.setHash.slice(0, 16)}…); ` +
              "each contributor checks its entry and countersigns the set with its reveal",
          );
          break;
        case "contribution.accepted":
          say(
            `    reveal from ${names.get(event.contributorId) ?? event.contributorId}: ` +
              "matches its commitment, signature verified, decrypted; receipt signed",
          );
          break;
        case "round.aborted":
          say(`    round aborted: ${event.message}`);
          break;
        case "contribution.rejected":
          say(`    contribution rejected (${event.code}): ${event.message}`);
          break;
        case "round.logged":
          say(
            `    round logged before anyone is told: entry ${event.index} of the transparency log ` +
              `(${event.outcome}; commitments, countersignatures, signed set and closing, a salted ` +
              `commitment to the result); checkpoint of ${event.size} signed with the log key`,
          );
          break;
        case "round.completed":
          stored = event.record;
          say(
            `[5] all ${event.accepted} committed secret phrases, the seed phrase and the server secret combined (HKDF-SHA-512)`,
          );
          say(`    OTP stored in ${join(serverDir, "key_store")}, encrypted at rest`);
          say(`    record       ${event.record.id}  (round ${event.roundId})`);
          break;
        default:
          break;
      }
    });

    say("[2] contributors enrolled and joined");
    for (const [name, generator] of CONTRIBUTORS) {
      const dataDir = join(root, name);
      const { token } = await issueEnrollmentToken(serverDir, { name });
      const state = await loadOrCreateContributorState(dataDir, { generator });
      const contributor = new Contributor({
        serverUrl: running.url,
        state,
        entropy: new EntropyPool(new Uint8Array(0), "os"),
        pins: new PinStore(dataDir),
        token,
        name,
        reconnect: false,
      });
      await contributor.start();
      contributorStates.push(state);
      names.set(state.contributorId, name);
      contributors.push(contributor);
      say(`    ${name.padEnd(6)} ${state.contributorId}  generator ${state.generator.name}`);
    }
    say("    each checked the server's signature over its handshake: it holds the pinned key");

    // The distribution side: a relying service asks for an OTP for its user and checks it.
    const requesterDir = join(root, "webapp");
    const keys = await loadOrCreateRequesterKeys(requesterDir);
    const { credential } = await addRequester(
      serverDir,
      "webapp",
      keys.publicKey.export({ type: "spki", format: "pem" }) as string,
    );
    say("[3] requesting client webapp registered (a relying service)");
    say(`    key          RSA-3072 ${keys.fingerprint}`);
    const client = new RequesterClient({
      server: running.httpUrl!,
      credential: new Secret(new Uint8Array(Buffer.from(credential))),
      privateKey: keys.privateKey,
      fingerprint: keys.fingerprint,
    });
    say(`[4] webapp asks for an OTP for ${SUBJECT}: none is ready, so a round runs for it`);
    const otp = await client.requestOtp({ subject: SUBJECT });
    if (stored === undefined || stored.id !== otp.otpId) {
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        "The demo's OTP is not the one its round stored.",
      );
    }
    say(`[6] OTP ${stored.id} delivered to webapp, sealed to its key in transit: ${otp.code}`);
    say(`    the record the round stored above; valid once, until ${otp.expiresAt}`);
    const first = await client.verifyOtp(SUBJECT, otp.code);
    const second = await client.verifyOtp(SUBJECT, otp.code);
    say(
      `[7] ${SUBJECT} types ${otp.code}; webapp verifies it: ${first.valid ? "valid" : `rejected (${first.reason})`}`,
    );
    say(
      `    the same code again: ${second.valid ? "valid (unexpected!)" : `rejected (${second.reason})`}`,
    );
    if (!first.valid || second.valid || first.otpId !== stored.id) {
      throw new DkeygenError(ErrorCodes.OPERATIONAL, "The demo's OTP did not verify exactly once.");
    }
    await auditTheLog(say, running, contributorStates);
    await thresholdKey(say, running, names);
    say(`\ndone in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return stored;
  } finally {
    for (const contributor of contributors) await contributor.stop();
    await running?.stop();
    if (!options.keep) {
      await rm(root, { recursive: true, force: true });
      process.off("exit", removeAtExit);
    } else say(`kept ${root} (the server's data folder, the contributors' and webapp's)`);
  }
}

/**
 * Step 8: what anyone can do without trusting the server: fetch the public log, check the server
 * key's certificate of the log key, the checkpoint and the contributors' cosignatures (they
 * witness the log), recompute the tree and verify every entry's signatures (audit/log-audit.ts).
 */
async function auditTheLog(
  say: (line: string) => void,
  running: Awaited<ReturnType<typeof startServer>>,
  states: readonly { contributorId: string; publicKey: KeyObject }[],
): Promise<void> {
  const witnesses = states.map((state) => witnessIdentity(state).verifierKey);
  const source = await serverSource(running.httpUrl!, undefined);
  let report: AuditReport;
  try {
    report = await auditLog({
      identity: await source.identity(),
      checkpoint: await source.checkpoint(),
      leaves: (size) => source.leaves(size),
      serverFingerprint: running.fingerprint,
      witnesses,
      minCosignatures: 1,
    });
  } finally {
    await source.close();
  }
  say(`[8] anyone audits the public log (dkeygen audit log --server ${running.httpUrl})`);
  say(
    `    log key certified by the server key ${report.identity?.serverFingerprint ?? "?"} (pinned)`,
  );
  say(
    `    checkpoint of ${report.checkpoint?.size ?? 0} entr${report.checkpoint?.size === 1 ? "y" : "ies"}, signed by the log key, ` +
      `cosigned by ${report.checkpoint?.cosignatures.length ?? 0} of the ${witnesses.length} contributors (witnesses)`,
  );
  say(
    `    tree recomputed; every entry's invitation, commitments, countersignatures, set and closing verified: ` +
      `${report.outcomes.completed} completed, ${report.outcomes.aborted} aborted`,
  );
  if (!report.ok) {
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `The demo's log did not pass its audit: ${report.failures[0]?.message ?? "unknown"}`,
    );
  }
  say("    audit passed");
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description(
      "run the whole product on this machine: one OTP from its round to its verification",
    )
    .option("--keep", "keep the demo's data folder (server, contributors, webapp) to look at")
    .action(async (flags: { keep?: boolean }) => {
      await runDemo(flags);
    });
}
