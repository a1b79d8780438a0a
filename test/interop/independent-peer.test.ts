// A second implementation of the wire protocol (test/interop/independent-peer.mjs, written from
// docs/PROTOCOL.md alone) against a real `dkeygen server` child process: independent
// contributors commit, reveal and get verified receipts in version-4 rounds run by the independent
// admin client, their contributions are the record's participants, and each side refuses what it
// must (another server's key, a forged welcome proof, round.open, round.commits or round.receipt
// signature, a replayed invitation or commit set, a server answer whose MAC was changed on the
// way, a round.closed that is not signed by the round key); a contributor that reveals nothing
// makes the round abort, named. Tampering is done by a small WebSocket relay between the peer and
// the server, so the peer's own code path meets it. A relay cannot play a lying server any more:
// the round's set, receipts and closing are signed by the round's Ed25519 key, which the server
// keeps in memory and forgets, and which round.open's RSA signature certifies. So the relays below
// show that a closing re-signed with the server's RSA key (server-key.pem), or with an Ed25519 key
// of their own, is ignored, and that a round key of their own cannot be put into round.open. A
// closing that contradicts a receipt cannot be had from an honest server; the golden test builds
// one with the golden round key and checks that the peer calls it out.
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  constants,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
} from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import WebSocket, { type RawData, WebSocketServer } from "ws";
import { CLI, REPO_ROOT } from "../helpers/paths.js";

const PEER = `${REPO_ROOT}test/interop/independent-peer.mjs`;
const run = promisify(execFile);
const { paramsHash, roundClosedData, toB64u } = (await import(pathToFileURL(PEER).href)) as {
  paramsHash(purpose: string, params: unknown): Buffer;
  roundClosedData(closed: Record<string, unknown>): Buffer;
  toB64u(bytes: Uint8Array): string;
};

type Line = Record<string, unknown>;

/** A child process whose stdout is JSON lines, kept in order and waited on. */
class JsonLines {
  readonly lines: Line[] = [];
  readonly exited: Promise<number | null>;
  #stderr = "";
  #waiters: (() => void)[] = [];

  constructor(readonly child: ChildProcess) {
    const input = createInterface({ input: child.stdout! });
    input.on("line", (text) => {
      try {
        this.lines.push(JSON.parse(text) as Line);
      } catch {
        this.lines.push({ unparsed: text });
      }
      for (const wake of this.#waiters.splice(0)) wake();
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-4000);
    });
    this.exited = new Promise((resolve) => {
      child.once("exit", (code) => {
        // Let readline deliver what the process printed before it exited.
        setImmediate(() => {
          for (const wake of this.#waiters.splice(0)) wake();
          resolve(code);
        });
      });
    });
  }

  /** The first line matching `match`, waiting up to `timeoutMs` for it. */
  async waitFor(match: (line: Line) => boolean, timeoutMs = 15_000): Promise<Line> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(match);
      if (found) return found;
      if (this.child.exitCode !== null || Date.now() > deadline) {
        assert.fail(
          `no such line; got ${JSON.stringify(this.lines)}; exit ${this.child.exitCode}; stderr ${this.#stderr}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
    }
    await this.exited;
  }
}

function startPeer(args: string[], env: NodeJS.ProcessEnv): JsonLines {
  return new JsonLines(
    spawn(process.execPath, [PEER, ...args], { env, stdio: ["ignore", "pipe", "pipe"] }),
  );
}

/**
 * A one-shot peer run (the admin client, or a contributor expected to fail): its exit and lines.
 * One that is still running after `timeoutMs` is stopped, and reported as exit null.
 */
async function runPeer(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 15_000) {
  const peer = startPeer(args, env);
  const timer = setTimeout(() => peer.child.kill("SIGKILL"), timeoutMs);
  const code = await peer.exited;
  clearTimeout(timer);
  return { code, lines: peer.lines, last: peer.lines.at(-1) ?? {} };
}

/** Flips the lowest bit of the first byte of a base64url field. */
function flipB64u(text: string): string {
  const bytes = Buffer.from(text, "base64url");
  bytes[0]! ^= 0x01;
  return bytes.toString("base64url");
}

interface RelayOptions {
  /** Changes (or not) each message from the server before the peer gets it. */
  tamper?: (message: Line) => Line;
  /** Message types from the server that the peer gets twice. */
  repeat?: string[];
  /** Whether the server's pings reach the peer (else the relay answers them itself). */
  pings?: boolean;
}

/**
 * A WebSocket relay on loopback between a peer and the server: it passes every text frame, keeps
 * what the peer sent in `fromPeer`, and can change, repeat or withhold what the server sends.
 */
async function startRelay(upstream: string, options: RelayOptions = {}) {
  const { tamper = (message: Line) => message, repeat = [], pings = true } = options;
  const fromPeer: Line[] = [];
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(wss, "listening");
  wss.on("connection", (client) => {
    const server = new WebSocket(upstream);
    const early: string[] = [];
    client.on("message", (data: RawData) => {
      fromPeer.push(JSON.parse(data.toString()) as Line);
      if (server.readyState === WebSocket.OPEN) server.send(data.toString());
      else early.push(data.toString());
    });
    server.on("open", () => {
      for (const text of early.splice(0)) server.send(text);
    });
    server.on("message", (data: RawData) => {
      const message = tamper(JSON.parse(data.toString()) as Line);
      client.send(JSON.stringify(message));
      if (repeat.includes(message.type as string)) client.send(JSON.stringify(message));
    });
    if (pings) server.on("ping", (data: Buffer) => client.ping(data));
    client.on("close", () => server.close());
    server.on("close", () => client.close());
    client.on("error", () => server.terminate());
    server.on("error", () => client.terminate());
  });
  const { port } = wss.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}`,
    fromPeer,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise((resolve) => wss.close(resolve));
    },
  };
}

// Each step waits at most 15 s for a peer; the whole suite takes about 30 s.
describe("an independent implementation written from docs/PROTOCOL.md", {
  timeout: 120_000,
}, () => {
  const home = mkdtempSync(join(tmpdir(), "dkeygen-interop-"));
  const dataDir = join(home, "server");
  // The server's key stays unencrypted, so a relay below can sign with it (and be ignored).
  const { DKEYGEN_SERVER_PASSPHRASE: _, ...inherited } = process.env;
  const env = { ...inherited, DKEYGEN_HOME: home };
  const peers: JsonLines[] = [];
  const relays: { close(): Promise<void> }[] = [];
  let server: JsonLines;
  let url = "";
  let fingerprint = "";
  const ids: Record<string, string> = {};

  /** A fresh enrollment token from the real CLI, in a 0600 file (never on a command line). */
  async function tokenFile(name: string): Promise<string> {
    const { stdout } = await run(
      process.execPath,
      [CLI, "enroll", "--data-dir", dataDir, "--name", name, "--json"],
      { env },
    );
    const file = join(home, `${name}.token`);
    writeFileSync(file, `${(JSON.parse(stdout) as { token: string }).token}\n`, { mode: 0o600 });
    return file;
  }

  function contributor(name: string, args: string[]): JsonLines {
    const peer = startPeer(["contributor", "--state", join(home, name), ...args], env);
    peers.push(peer);
    return peer;
  }

  const admin = (extra: string[], via = url) =>
    runPeer(
      [
        "admin",
        "--url",
        via,
        "--fingerprint",
        fingerprint,
        "--token-file",
        join(dataDir, "admin.token"),
        ...extra,
      ],
      env,
    );

  before(async () => {
    // The server's --json summary is one JSON object (pretty-printed) on stdout.
    const child = spawn(
      process.execPath,
      [
        CLI,
        "server",
        "--data-dir",
        dataDir,
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "off",
        "--otp-pool",
        "0",
        // The independent peer does not witness the log (PROTOCOL §15.5): rounds need no
        // cosignature here.
        "--min-cosignatures",
        "0",
        "--round-timeout",
        "3s",
        "--log-format",
        "json",
        "--json",
      ],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let text = "";
    const summary = await new Promise<{ url: string; fingerprint: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start: ${text}`)), 20_000);
      child.stdout.on("data", (chunk: Buffer) => {
        text += chunk.toString();
        try {
          resolve(JSON.parse(text) as { url: string; fingerprint: string });
          clearTimeout(timer);
        } catch {
          // not the whole object yet
        }
      });
      child.once("exit", (code) => reject(new Error(`server exited ${code}: ${text}`)));
    });
    server = new JsonLines(child);
    url = summary.url;
    fingerprint = summary.fingerprint;
  });

  after(async () => {
    for (const relay of relays) await relay.close();
    for (const peer of peers) await peer.stop();
    await server?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  it("an independent contributor refuses a server whose fingerprint is not the one given", async () => {
    const other = `SHA256:${createHash("sha256").update("another server").digest("base64").replace(/=+$/, "")}`;
    const token = await tokenFile("alice");
    const result = await runPeer(
      [
        "contributor",
        "--url",
        url,
        "--fingerprint",
        other,
        "--token-file",
        token,
        "--state",
        join(home, "alice"),
      ],
      env,
    );
    assert.equal(result.code, 1);
    assert.deepEqual(result.last.error && (result.last.error as Line).code, "E_PIN_MISMATCH");
    assert.equal(result.lines.length, 1, "nothing but the refusal");
  });

  it("two independent contributors enroll with their tokens and are welcomed with a valid proof", async () => {
    // alice's token is still unused: the refusal above came before any join was sent.
    const alice = contributor("alice", [
      "--url",
      url,
      "--fingerprint",
      fingerprint,
      "--token-file",
      join(home, "alice.token"),
    ]);
    const bob = contributor("bob", ["--url", url, "--token-file", await tokenFile("bob")]);
    for (const [name, peer] of [
      ["alice", alice],
      ["bob", bob],
    ] as const) {
      const welcome = await peer.waitFor((line) => line.event === "welcome");
      assert.equal(welcome.enrolled, true);
      assert.equal(welcome.name, name);
      assert.equal(welcome.server, fingerprint);
      ids[name] = welcome.contributorId as string;
    }
  });

  it("an enrolled independent contributor rejoins without presenting its token again", async () => {
    await peers[0]!.stop();
    // Given the token file again, through a relay that shows what it sends.
    const relay = await startRelay(url);
    relays.push(relay);
    const alice = contributor("alice", [
      "--url",
      relay.url,
      "--token-file",
      join(home, "alice.token"),
    ]);
    const welcome = await alice.waitFor((line) => line.event === "welcome");
    assert.equal(welcome.enrolled, false);
    assert.equal(welcome.contributorId, ids.alice);
    const joins = relay.fromPeer.filter((message) => message.type === "join");
    assert.equal(joins.length, 1);
    assert.equal(Object.hasOwn(joins[0]!, "token"), false);
  });

  it("the independent admin client runs an otp round in which both commit, reveal and get receipts", async () => {
    const result = await admin(["--generate", "otp", "--param", "digits=8"]);
    assert.equal(result.code, 0, JSON.stringify(result.lines));
    const { status, record } = result.last as { status: Line; record: Line };
    const listed = (status.contributors as { id: string }[]).map((c) => c.id).sort();
    assert.deepEqual(listed, [ids.alice, ids.bob].sort());
    assert.equal(record.purpose, "otp");
    assert.equal(record.owner, "@admin");
    assert.deepEqual(record.public, { digits: 8 });
    // Both contributions were used: the record names both contributors.
    assert.deepEqual((record.participants as string[]).slice().sort(), [ids.alice, ids.bob].sort());
    const roundId = record.roundId;
    // The admin sent {"digits":"8"} (--param values are strings): §5 hashes the parameters as the
    // record keeps them, parsed with defaults filled (§13.2): {"digits":8}.
    const expected = toB64u(paramsHash("otp", { digits: 8 }));
    for (const peer of [peers[1]!, peers[2]!]) {
      const committed = await peer.waitFor((l) => l.event === "committed" && l.roundId === roundId);
      assert.equal(committed.invited, 2);
      assert.equal(committed.paramsHash, expected);
      assert.notEqual(committed.paramsHash, toB64u(paramsHash("otp", { digits: "8" })));
      const revealed = await peer.waitFor((l) => l.event === "revealed" && l.roundId === roundId);
      assert.equal(revealed.commits, 2);
      // The server's signed receipt, verified by the peer, names the set it revealed against.
      const receipt = await peer.waitFor((l) => l.event === "receipt" && l.roundId === roundId);
      assert.equal(receipt.setHash, revealed.setHash);
      // So does its signed closing, which the peer verified before taking it.
      const closed = await peer.waitFor((l) => l.event === "closed" && l.roundId === roundId);
      assert.deepEqual(
        [closed.outcome, closed.accepted, closed.missing, closed.setHash],
        ["completed", 2, [], revealed.setHash],
      );
      assert.equal(
        peer.lines.some((l) => l.event === "ignored" || l.event === "contradicted"),
        false,
        JSON.stringify(peer.lines),
      );
    }
    // Both saw the same commit set.
    const hashes = [peers[1]!, peers[2]!].map(
      (peer) => peer.lines.find((l) => l.event === "revealed" && l.roundId === roundId)?.setHash,
    );
    assert.equal(hashes[0], hashes[1]);
  });

  it("the independent admin client refuses a server answer whose MAC was changed on the way", async () => {
    let flipped = 0;
    const relay = await startRelay(url, {
      tamper: (message) => {
        if (message.type !== "admin.frame") return message;
        flipped++;
        return { ...message, mac: flipB64u(message.mac as string) };
      },
    });
    relays.push(relay);
    const result = await admin([], relay.url);
    assert.equal(flipped, 1, "the first answer was tampered with");
    assert.equal(result.code, 1);
    assert.equal((result.last.error as Line).code, "E_BAD_SIGNATURE");
    assert.equal(result.last.status, undefined);
  });

  it("an independent contributor refuses a welcome whose proof was changed, and pins nothing", async () => {
    const relay = await startRelay(url, {
      tamper: (message) =>
        message.type === "welcome"
          ? { ...message, proof: flipB64u(message.proof as string) }
          : message,
    });
    relays.push(relay);
    const state = join(home, "carol");
    const result = await runPeer(
      [
        "contributor",
        "--url",
        relay.url,
        "--token-file",
        await tokenFile("carol"),
        "--state",
        state,
      ],
      env,
    );
    assert.equal(result.code, 1);
    assert.equal((result.last.error as Line).code, "E_BAD_SIGNATURE");
    assert.equal(
      existsSync(join(state, "peer.json")),
      false,
      "no trust on first use without the proof",
    );
  });

  it("an independent contributor answers neither a forged round.open nor a replayed one, and checks its receipt", async () => {
    const forging = await startRelay(url, {
      tamper: (message) =>
        message.type === "round.open"
          ? { ...message, signature: flipB64u(message.signature as string) }
          : message,
    });
    relays.push(forging);
    const dave = contributor("dave", [
      "--url",
      forging.url,
      "--token-file",
      await tokenFile("dave"),
    ]);
    // erin's relay sends every round.open and round.commits twice, the copy right after it.
    const replaying = await startRelay(url, { repeat: ["round.open", "round.commits"] });
    relays.push(replaying);
    const erin = contributor("erin", [
      "--url",
      replaying.url,
      "--token-file",
      await tokenFile("erin"),
    ]);
    // gina's relay flips the signature of her receipt: the server accepted her reveal, but the
    // receipt she is shown is not the server's.
    const receipts = await startRelay(url, {
      tamper: (message) =>
        message.type === "round.receipt"
          ? { ...message, signature: flipB64u(message.signature as string) }
          : message,
    });
    relays.push(receipts);
    const gina = contributor("gina", [
      "--url",
      receipts.url,
      "--token-file",
      await tokenFile("gina"),
    ]);
    for (const [name, peer] of [
      ["dave", dave],
      ["erin", erin],
      ["gina", gina],
    ] as const) {
      ids[name] = (await peer.waitFor((line) => line.event === "welcome")).contributorId as string;
    }
    // dave is invited but never commits, so the commit phase runs to its 3 s deadline.
    const result = await admin(["--generate", "otp"]);
    assert.equal(result.code, 0, JSON.stringify(result.lines));
    const record = (result.last as { record: Line }).record;
    const expected = [ids.alice, ids.bob, ids.erin, ids.gina].sort();
    assert.deepEqual((record.participants as string[]).slice().sort(), expected);
    // No --param: the admin sent {} and round.open hashes otp's parameters with their defaults,
    // {"digits":6}, as the record keeps them.
    const committed = await erin.waitFor(
      (line) => line.event === "committed" && line.roundId === record.roundId,
    );
    assert.equal(committed.paramsHash, toB64u(paramsHash("otp", { digits: 6 })));
    assert.notEqual(committed.paramsHash, toB64u(paramsHash("otp", {})));

    const forged = await dave.waitFor((line) => line.event === "ignored");
    assert.deepEqual(
      [forged.type, forged.roundId, forged.code],
      ["round.open", record.roundId, "E_BAD_SIGNATURE"],
    );
    assert.equal(
      dave.lines.some((line) => line.event === "committed"),
      false,
    );
    assert.equal(
      forging.fromPeer.some((message) => message.type === "commit"),
      false,
    );

    const byType = (type: string) => (line: Line) => line.event === "ignored" && line.type === type;
    const again = await erin.waitFor(byType("round.open"));
    assert.deepEqual([again.roundId, again.code], [record.roundId, "E_DUPLICATE_CONTRIBUTION"]);
    const setAgain = await erin.waitFor(byType("round.commits"));
    assert.deepEqual([setAgain.roundId, setAgain.code], [record.roundId, "E_UNEXPECTED_MESSAGE"]);
    const erinSent = (type: string) =>
      replaying.fromPeer.filter((message) => message.type === type).length;
    assert.deepEqual([erinSent("commit"), erinSent("reveal")], [1, 1]);
    await erin.waitFor((line) => line.event === "receipt" && line.roundId === record.roundId);

    const badReceipt = await gina.waitFor(byType("round.receipt"));
    assert.deepEqual([badReceipt.roundId, badReceipt.code], [record.roundId, "E_BAD_SIGNATURE"]);
    await gina.waitFor((line) => line.event === "closed" && line.roundId === record.roundId);
    assert.equal(
      gina.lines.some((line) => line.event === "receipt"),
      false,
    );
  });

  it("a contributor shown a forged commit set reveals nothing, and the round aborts naming it", async () => {
    const relay = await startRelay(url, {
      tamper: (message) =>
        message.type === "round.commits"
          ? { ...message, signature: flipB64u(message.signature as string) }
          : message,
    });
    relays.push(relay);
    const hank = contributor("hank", ["--url", relay.url, "--token-file", await tokenFile("hank")]);
    ids.hank = (await hank.waitFor((line) => line.event === "welcome")).contributorId as string;
    // Commit phase to its deadline (dave), then the reveal phase to its deadline (hank): 6 s.
    const result = await admin(["--generate", "otp"]);
    assert.equal(result.code, 1, JSON.stringify(result.lines));
    const error = result.last.error as Line;
    assert.equal(error.code, "E_ROUND_ABORTED");
    assert.ok((error.message as string).includes(ids.hank!), error.message as string);

    const ignored = await hank.waitFor(
      (line) => line.event === "ignored" && line.type === "round.commits",
    );
    assert.equal(ignored.code, "E_BAD_SIGNATURE");
    const roundId = ignored.roundId;
    assert.equal(
      relay.fromPeer.some((message) => message.type === "reveal"),
      false,
    );
    assert.equal(
      relay.fromPeer.filter((message) => message.type === "commit").length,
      1,
      "hank did commit",
    );
    // alice revealed and holds a receipt; the round still aborted, naming hank and only hank.
    const alice = peers[2]!;
    await alice.waitFor((line) => line.event === "receipt" && line.roundId === roundId);
    const closed = await alice.waitFor(
      (line) => line.event === "closed" && line.roundId === roundId,
    );
    assert.deepEqual([closed.outcome, closed.missing], ["aborted", [ids.hank]]);
    const aliceSet = alice.lines.find((l) => l.event === "revealed" && l.roundId === roundId);
    assert.equal(closed.setHash, aliceSet?.setHash, "the abort names the set alice countersigned");
    assert.equal(
      alice.lines.some((line) => line.event === "contradicted"),
      false,
    );
    const hankClosed = await hank.waitFor(
      (line) => line.event === "closed" && line.roundId === roundId,
    );
    assert.deepEqual(hankClosed.missing, [ids.hank]);
    // Later rounds would abort the same way: hank leaves.
    await hank.stop();
  });

  it("a contributor ignores a round.closed re-signed with the server's RSA key or another Ed25519 key, and a round key swapped into round.open", async () => {
    // Each relay turns a completed round.closed into an abort naming its contributor, as a lying
    // server would: ivy's signs it with the server's own RSA key (RSASSA-PSS, as version 2 did),
    // kim's with an Ed25519 key of its own; jack's flips the genuine signature. lee's relay puts
    // its own key into round.open as roundKey (it cannot re-sign round.open) and signs the lie
    // with it.
    const serverKey = createPrivateKey(readFileSync(join(dataDir, "server-key.pem")));
    const relayKey = generateKeyPairSync("ed25519").privateKey;
    const relayRaw = createPublicKey(relayKey).export({ type: "spki", format: "der" }).subarray(12);
    const lieAbout = (message: Line, name: string): Line => ({
      ...message,
      outcome: "aborted",
      accepted: (message.accepted as number) - 1,
      missing: [ids[name]],
    });
    const closings = (name: string, signed: (lie: Line) => Buffer) => (message: Line) => {
      if (message.type !== "round.closed" || message.outcome !== "completed") return message;
      const lie = lieAbout(message, name);
      return { ...lie, signature: toB64u(signed(lie)) };
    };
    const rsa = await startRelay(url, {
      tamper: closings("ivy", (lie) =>
        sign("sha256", roundClosedData(lie), {
          key: serverKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: 32,
        }),
      ),
    });
    const ed25519 = await startRelay(url, {
      tamper: closings("kim", (lie) => sign(null, roundClosedData(lie), relayKey)),
    });
    const flipping = await startRelay(url, {
      tamper: (message) =>
        message.type === "round.closed"
          ? { ...message, signature: flipB64u(message.signature as string) }
          : message,
    });
    const rekeying = await startRelay(url, {
      tamper: (message) =>
        message.type === "round.open"
          ? { ...message, roundKey: toB64u(relayRaw) }
          : closings("lee", (lie) => sign(null, roundClosedData(lie), relayKey))(message),
    });
    relays.push(rsa, ed25519, flipping, rekeying);
    const joinVia = async (name: string, relay: { url: string }) =>
      contributor(name, ["--url", relay.url, "--token-file", await tokenFile(name)]);
    const ivy = await joinVia("ivy", rsa);
    const kim = await joinVia("kim", ed25519);
    const jack = await joinVia("jack", flipping);
    const lee = await joinVia("lee", rekeying);
    for (const [name, peer] of [
      ["ivy", ivy],
      ["kim", kim],
      ["jack", jack],
      ["lee", lee],
    ] as const) {
      ids[name] = (await peer.waitFor((line) => line.event === "welcome")).contributorId as string;
    }
    // dave and lee never commit: the commit phase runs to its deadline; everyone else reveals.
    const result = await admin(["--generate", "otp"]);
    assert.equal(result.code, 0, JSON.stringify(result.lines));
    const record = (result.last as { record: Line }).record;
    const roundId = record.roundId;
    assert.equal((record.participants as string[]).includes(ids.lee!), false);
    for (const name of ["ivy", "kim", "jack"]) {
      assert.ok((record.participants as string[]).includes(ids[name]!), name);
    }
    const inRound = (event: string) => (line: Line) =>
      line.event === event && line.roundId === roundId;
    const ignoredClosing = (line: Line) => line.event === "ignored" && line.type === "round.closed";

    // An RSA signature is no round.closed at all: its signature is not 64 bytes (§4).
    await ivy.waitFor(inRound("receipt"));
    const malformed = await ivy.waitFor(
      (line) => line.event === "ignored" && line.code === "E_MALFORMED_MESSAGE",
    );
    assert.equal(malformed.message, "The field signature is not 64 bytes.");
    // Signed by a key no round.open certified, or flipped: not the round key's.
    for (const peer of [kim, jack]) {
      await peer.waitFor(inRound("receipt"));
      const ignored = await peer.waitFor(ignoredClosing);
      assert.deepEqual([ignored.roundId, ignored.code], [roundId, "E_BAD_SIGNATURE"]);
    }
    // lee's round.open no longer verifies under the server's key: no commit, no round, and the
    // relay's closing finds no round.open of lee's to take a key from.
    const open = await lee.waitFor(
      (line) => line.event === "ignored" && line.type === "round.open",
    );
    assert.deepEqual([open.roundId, open.code], [roundId, "E_BAD_SIGNATURE"]);
    assert.equal(
      rekeying.fromPeer.some((message) => message.type === "commit"),
      false,
    );
    const leeClosing = await lee.waitFor(ignoredClosing);
    assert.deepEqual([leeClosing.roundId, leeClosing.code], [roundId, "E_WRONG_ROUND"]);
    for (const peer of [ivy, kim, jack, lee]) {
      assert.equal(peer.lines.some(inRound("closed")), false);
      assert.equal(
        peer.lines.some((line) => line.event === "contradicted"),
        false,
      );
    }
    // The others were told the truth, under the round key.
    const alice = await peers[2]!.waitFor(inRound("closed"));
    assert.deepEqual([alice.outcome, alice.missing], ["completed", []]);
    assert.equal(
      peers[2]!.lines.some((line) => line.event === "contradicted"),
      false,
    );
  });

  it("an independent contributor gives up on a server silent for 2.5 heartbeat intervals", async () => {
    // The relay announces 2 s heartbeats and withholds the server's pings: after the welcome
    // nothing reaches the peer, which must give up 5 s later (it looks every 0.5 s).
    const relay = await startRelay(url, {
      tamper: (message) => (message.type === "hello" ? { ...message, heartbeatMs: 2000 } : message),
      pings: false,
    });
    relays.push(relay);
    // A new identity: a second join of a connected one would end the first one's session.
    const token = await tokenFile("frank");
    const frank = contributor("frank", ["--url", relay.url, "--token-file", token]);
    await frank.waitFor((line) => line.event === "welcome");
    const welcomed = Date.now();
    const code = await frank.exited;
    const waited = Date.now() - welcomed;
    assert.equal(code, 1);
    assert.equal((frank.lines.at(-1)!.error as Line).code, "E_TIMEOUT");
    assert.ok(waited >= 4900 && waited < 7000, `gave up ${waited} ms after the welcome`);
  });
});
