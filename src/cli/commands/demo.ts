/**
 * `dkeygen demo`: the whole product on one machine, on real loopback sockets, in a fresh data
 * folder: a key generation server, three enrolled contributors, one OTP round, then a requesting
 * client that gets the OTP from the distribution server and verifies it (once). Every step is
 * shown as it happens; exits 0 when all of it worked.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import { AdminClient } from "../../client/admin-client.js";
import { Contributor } from "../../client/contributor.js";
import { loadOrCreateContributorState } from "../../client/contributor-state.js";
import { EntropyPool } from "../../client/entropy.js";
import { PinStore } from "../../client/pins.js";
import { RequesterClient } from "../../client/requester.js";
import { loadOrCreateRequesterKeys } from "../../client/requester-state.js";
import { Secret } from "../../crypto/secret.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { silentLogger } from "../../logging.js";
import { issueEnrollmentToken } from "../../server/enrollment.js";
import { addRequester } from "../../server/requesters.js";
import { ADMIN_TOKEN_FILE, loadOrCreateKeyFile, startServer } from "../../server/runtime.js";

/** Three contributors, each with another secret phrase generator from the registry. */
const CONTRIBUTORS = [
  ["alice", "hmac-sha512"],
  ["bob", "blake2b-512-keyed"],
  ["carol", "kmac256"],
] as const;

export async function runDemo(options: { keep?: boolean; out?: NodeJS.WritableStream } = {}) {
  const out = options.out ?? process.stdout;
  const say = (line: string) => out.write(`${line}\n`);
  const started = performance.now();
  const root = await mkdtemp(join(tmpdir(), "dkeygen-demo-"));
  const serverDir = join(root, "server");
  const contributors: Contributor[] = [];
  let running: Awaited<ReturnType<typeof startServer>> | undefined;
  let admin: AdminClient | undefined;
  say("dkeygen demo: one key-generation round with three contributors, on this machine");
  say(`data folder ${root}\n`);
  try {
    running = await startServer({
      dataDir: serverDir,
      port: 0,
      logger: silentLogger,
      http: { port: 0 },
      otpPool: { size: 0 },
    });
    say("[1] key generation server started");
    say(`    fingerprint  ${running.fingerprint}  (new RSA-3072 key)`);
    say(`    listening    ${running.url}`);

    const names = new Map<string, string>();
    const server = running.server;
    server.onEvent((event) => {
      switch (event.type) {
        case "round.opened":
          say(`[3] round ${event.roundId} opened for ${event.purpose}`);
          say(
            `    seed phrase (${event.seedBits} bits, OS CSPRNG) sent to ${event.participants} contributors`,
          );
          say(
            `    server secret committed (SHA-256 ${event.serverCommitment.slice(0, 16)}…), never sent; invitation signed`,
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
        case "round.completed":
          say(
            `[4] all ${event.accepted} committed secret phrases, the seed phrase and the server secret combined (HKDF-SHA-512)`,
          );
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
      names.set(state.contributorId, name);
      contributors.push(contributor);
      say(`    ${name.padEnd(6)} ${state.contributorId}  generator ${state.generator.name}`);
    }
    say("    each checked the server's signature over its handshake: it holds the pinned key");

    admin = await AdminClient.connect({
      url: running.url,
      token: await loadOrCreateKeyFile(join(serverDir, ADMIN_TOKEN_FILE)),
      expectedFingerprint: running.fingerprint,
    });
    say("    admin session: server's key proved, every command and answer MACed");
    const record = await admin.generate("otp", { digits: 6 });
    say(`[5] result stored in ${join(serverDir, "key_store")}`);
    say(`    record       ${record.id}`);
    say(`    purpose      ${record.purpose} (${record.algorithm})`);
    say(`    public part  ${JSON.stringify(record.public)}`);
    say("    the OTP itself is encrypted at rest; only a registered requester can have it");

    // The distribution side: a relying service asks for the OTP and checks what its user typed.
    const requesterDir = join(root, "webapp");
    const keys = await loadOrCreateRequesterKeys(requesterDir);
    const { credential } = await addRequester(
      serverDir,
      "webapp",
      keys.publicKey.export({ type: "spki", format: "pem" }) as string,
    );
    say("[6] requesting client webapp registered");
    say(`    key          RSA-3072 ${keys.fingerprint}`);
    say(`    server       ${running.httpUrl}`);
    const client = new RequesterClient({
      server: running.httpUrl!,
      credential: new Secret(new Uint8Array(Buffer.from(credential))),
      privateKey: keys.privateKey,
      fingerprint: keys.fingerprint,
    });
    const otp = await client.requestOtp({ subject: "alice@example.com" });
    say(`[7] OTP requested for alice@example.com: ${otp.code}`);
    say(`    record ${otp.otpId}, sealed to webapp's key in transit, valid until ${otp.expiresAt}`);
    const first = await client.verifyOtp("alice@example.com", otp.code);
    const second = await client.verifyOtp("alice@example.com", otp.code);
    say(`[8] verification: ${first.valid ? "valid" : `rejected (${first.reason})`}`);
    say(
      `    the same code again: ${second.valid ? "valid (unexpected!)" : `rejected (${second.reason})`}`,
    );
    if (!first.valid || second.valid) {
      throw new DkeygenError(ErrorCodes.OPERATIONAL, "The demo's OTP did not verify exactly once.");
    }
    say(`\ndone in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return record;
  } finally {
    admin?.close();
    for (const contributor of contributors) await contributor.stop();
    await running?.stop();
    if (!options.keep) await rm(root, { recursive: true, force: true });
    else say(`kept ${root}`);
  }
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description(
      "run the whole ceremony on this machine: a server, three contributors, one OTP round",
    )
    .option("--keep", "keep the demo's data folder")
    .action(async (flags: { keep?: boolean }) => {
      await runDemo(flags);
    });
}
