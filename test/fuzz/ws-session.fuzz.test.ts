/**
 * Property-based fuzzing of the key generation server's WebSocket protocol (fast-check), in every
 * session state a peer can put itself in: before authenticating (handshake), as an enrolled
 * contributor, and as an authenticated admin (inside MACed admin frames). Each case starts from a
 * well-formed message — correctly signed where a signature is needed — and breaks it the way a
 * careless or hostile peer would: a field dropped or added (with control characters, ANSI escapes
 * or bidirectional controls in its name), a value of the wrong type, a number as a string, an
 * off-by-one or non-canonical base64url field, another message type (out of order), another
 * protocol version, deep nesting, `__proto__`, raw JSON or text; contributions replayed from
 * closed rounds. Besides the templates made here for each state, every state is also fed the golden
 * frames (test/helpers/wire-golden.ts, wire-golden-threshold.ts): a well-formed, correctly signed
 * frame of every message type in the schema table, the threshold ones (§16) included, so every
 * type is fuzzed in every state; a test checks that no type is left without one. Properties, for
 * every case:
 *
 * - the server answers with an `error` carrying a stable code (src/errors.ts), and in the
 *   handshake closes the connection after it; an admin's answer comes sealed and verifies;
 * - the server keeps serving: honest contributors stay connected and complete a round every
 *   HEALTH_EVERY cases;
 * - no log line, JSON or pretty, holds a raw control character.
 *
 * The bulk runs on the in-memory transport (the same KeygenServer, no sockets); a smaller run
 * goes over real WebSockets to a `dkeygen server` child process, which must still be running at
 * the end. `npm test` runs a quick seed; `npm run fuzz` runs FUZZ_RUNS (100,000) per state.
 */
import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync, type KeyObject, randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { fromBase64url, toBase64url } from "../../src/crypto/base64url.js";
import { rawPublicKey, signMessage } from "../../src/crypto/signature.js";
import { ErrorCodes } from "../../src/errors.js";
import { hasUnprintable } from "../../src/printable.js";
import { AdminChannel, adminSessionKeys } from "../../src/protocol/admin-channel.js";
import { contributorIdOf } from "../../src/protocol/identity.js";
import { type AnyMessage, decodeMessage, SCHEMAS } from "../../src/protocol/messages.js";
import { SESSION_ACCEPTS } from "../../src/protocol/session.js";
import {
  adminFrameMacData,
  adminProofData,
  joinSignedData,
} from "../../src/protocol/signed-data.js";
import { PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { witnessKeyName } from "../../src/protocol/witness.js";
import { issueEnrollmentToken } from "../../src/server/enrollment.js";
import { cosignatureSigner } from "../../src/tlog/cosignature.js";
import { parseNote } from "../../src/tlog/note.js";
import type { CloseInfo, Connection } from "../../src/transport/types.js";
import { dialWs } from "../../src/transport/ws.js";
import {
  buildContribution,
  buildReveal,
  type RawContribution,
  type RawPeer,
  setHashOf,
  tempDir,
} from "../helpers/ceremony.js";
import { CliProcess, serverArgs } from "../helpers/cli.js";
import { fuzzParameters, reportFuzz } from "../helpers/fuzz.js";
import { captureBothFormats } from "../helpers/log-capture.js";
import { type MemoryServer, startMemoryServer } from "../helpers/memory-server.js";
import { buildGolden, goldenKeys } from "../helpers/wire-golden.js";

const V = PROTOCOL_VERSION;
const CODES: ReadonlySet<string> = new Set(Object.values(ErrorCodes));
const HEALTH_EVERY = 250;
const b64 = (n: number) => toBase64url(randomBytes(n));

// ---- a peer that records what it gets -----------------------------------------------------------

class Probe {
  readonly connection: Connection;
  readonly inbox: AnyMessage[] = [];
  closed: CloseInfo | undefined;
  hello!: Extract<AnyMessage, { type: "hello" }>;
  /**
   * When set, round messages go here — the peer commits and reveals at once, so rounds need not
   * wait for it — and are kept out of the inbox, which then holds only answers to what it sent.
   */
  onRound: ((message: AnyMessage) => void) | undefined;
  #wake: (() => void) | undefined;

  constructor(connection: Connection) {
    this.connection = connection;
    connection.onFrame((frame) => {
      const message = decodeMessage(frame); // the server only ever sends valid messages
      if (
        this.onRound &&
        (message.type.startsWith("round.") || message.type === "log.checkpoint")
      ) {
        this.onRound(message);
        return;
      }
      this.inbox.push(message);
      this.#wake?.();
    });
    connection.onClose((info) => {
      this.closed = info;
      this.#wake?.();
    });
  }

  static async open(dial: () => Promise<Connection>): Promise<Probe> {
    const probe = new Probe(await dial());
    const hello = await probe.next();
    assert.ok(hello !== "closed" && hello.type === "hello");
    probe.hello = hello;
    return probe;
  }

  send(text: string): void {
    this.connection.send(text);
  }

  /** The next message, or "closed" once the connection closed with nothing more to read. */
  async next(timeoutMs = 10_000): Promise<AnyMessage | "closed"> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = this.inbox.shift();
      if (message) return message;
      if (this.closed) return "closed";
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("the server did not answer in time");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          this.#wake = undefined;
          resolve();
        };
      });
    }
  }
}

// ---- breaking a message ---------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Mutation =
  | { kind: "none" }
  | { kind: "drop"; pick: number }
  | { kind: "add"; key: string; value: Json }
  | { kind: "replace"; pick: number; value: Json }
  | { kind: "stringify"; pick: number }
  | { kind: "b64"; pick: number; how: "longer" | "shorter" | "tail" | "pad" | "std" }
  | { kind: "type"; type: string }
  | { kind: "version"; v: Json }
  | { kind: "nest"; pick: number; depth: number }
  | { kind: "proto" }
  | { kind: "raw"; text: string };

const hostileText = fc.oneof(
  fc.string({ maxLength: 24 }),
  fc.string({ unit: "grapheme", maxLength: 12 }),
  fc.constantFrom(
    "\u001b[2J\u001b[31mred",
    "line\n12:00:00 ERROR forged",
    "\r\u0000\u0007",
    "\u202eexe.txt",
    "\u2028\u2029\u0085",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a format string a peer might send
    "%s%n${x}",
    "x".repeat(300),
    "",
  ),
);
const junk: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(2 ** 53, -(2 ** 53), 1e308, -1, 0, 65_536, 4097),
  hostileText,
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(hostileText, fc.integer(), { maxKeys: 3 }),
);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.constant({ kind: "none" as const }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("drop" as const), pick: fc.nat() }), weight: 2 },
  {
    arbitrary: fc.record({ kind: fc.constant("add" as const), key: hostileText, value: junk }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ kind: fc.constant("replace" as const), pick: fc.nat(), value: junk }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant("stringify" as const), pick: fc.nat() }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant("b64" as const),
      pick: fc.nat(),
      how: fc.constantFrom("longer", "shorter", "tail", "pad", "std"),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("type" as const),
      type: fc.constantFrom(...Object.keys(SCHEMAS), "nope", "__proto__", "toString", ""),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("version" as const),
      v: fc.oneof(fc.integer({ min: -3, max: 9 }), fc.constantFrom<Json>(String(V), V + 0.5, null)),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("nest" as const),
      pick: fc.nat(),
      depth: fc.integer({ min: 1, max: 4000 }),
    }),
    weight: 1,
  },
  { arbitrary: fc.constant({ kind: "proto" as const }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant("raw" as const),
      text: fc.oneof(fc.json({ maxDepth: 3 }), fc.string({ maxLength: 64 })),
    }),
    weight: 1,
  },
);

/** Every place a value sits in `message`: top-level keys and one level of nested objects. */
function paths(message: Record<string, Json>): string[][] {
  const out: string[][] = [];
  for (const [key, value] of Object.entries(message)) {
    out.push([key]);
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const inner of Object.keys(value)) out.push([key, inner]);
    }
  }
  return out;
}

function at(
  message: Record<string, Json>,
  path: string[],
): { parent: Record<string, Json>; key: string } {
  let parent = message;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, Json>;
  return { parent, key: path.at(-1)! };
}

/** The frame text of `template` broken by `m`. */
function breakMessage(template: Record<string, Json>, m: Mutation): string {
  const message = structuredClone(template);
  const all = paths(message);
  const pick = (n: number) => at(message, all[n % all.length]!);
  switch (m.kind) {
    case "none":
      break;
    case "drop": {
      const { parent, key } = pick(m.pick);
      delete parent[key];
      break;
    }
    case "add":
      message[m.key] = m.value;
      break;
    case "replace": {
      const { parent, key } = pick(m.pick);
      parent[key] = m.value;
      break;
    }
    case "stringify": {
      const { parent, key } = pick(m.pick);
      const value = parent[key];
      parent[key] =
        typeof value === "number"
          ? String(value)
          : typeof value === "string"
            ? Number(value.length)
            : JSON.stringify(value);
      break;
    }
    case "b64": {
      const strings = all.filter((p) => {
        const { parent, key } = at(message, p);
        return typeof parent[key] === "string" && /^[A-Za-z0-9_-]{2,}$/.test(parent[key] as string);
      });
      if (strings.length === 0) break;
      const { parent, key } = at(message, strings[m.pick % strings.length]!);
      const text = parent[key] as string;
      const last = text.at(-1)!;
      parent[key] = {
        longer: `${text}A`,
        shorter: text.slice(0, -1),
        tail: `${text.slice(0, -1)}${last === "B" ? "C" : "B"}`,
        pad: `${text}=`,
        std: `+${text.slice(1)}`,
      }[m.how];
      break;
    }
    case "type":
      message.type = m.type;
      break;
    case "version":
      message.v = m.v;
      break;
    case "nest": {
      const { parent, key } = pick(m.pick);
      let value: Json = parent[key] ?? null;
      for (let i = 0; i < m.depth; i++) value = [value];
      parent[key] = value;
      break;
    }
    case "proto":
      return JSON.stringify(message).replace(
        /^\{/,
        '{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},',
      );
    case "raw":
      return m.text;
  }
  return JSON.stringify(message);
}

/** The `which`-th of `templates`, round robin. */
function pick<T>(templates: readonly T[], which: number): T {
  return templates[which % templates.length]!;
}

// ---- the server and its honest contributors ----------------------------------------------------

let memory: MemoryServer;
let logs: ReturnType<typeof captureBothFormats>;
/** Contributions that were valid in rounds now closed: replays. */
const replays: string[] = [];
let cases = 0;
/**
 * The golden frames, built afresh by their builders: a well-formed frame of every message type
 * (several of some: each DKG participant's round 1, a refresh's confirmations), correctly signed
 * by the golden keys. Sent to the fuzzed server they belong to no session, round or admin channel
 * of its own: what they reach is the session machine and each type's handler with well-formed,
 * unknown ids, and the mutations break them from there.
 */
let golden: Record<string, Json>[] = [];

/**
 * The golden frames to send where the types `accepts` are taken: all of those of such a type (the
 * well-formed variants where they count), and one of each other type (which must be refused).
 */
function goldenFor(accepts: readonly string[]): Record<string, Json>[] {
  const seen = new Set<string>();
  return golden.filter((frame) => {
    const type = frame.type as string;
    if (accepts.includes(type)) return true;
    if (seen.has(type)) return false;
    seen.add(type);
    return true;
  });
}

before(async () => {
  golden = Object.values(buildGolden(await goldenKeys()).frames).map(
    (frame) => JSON.parse(frame) as Record<string, Json>,
  );
  logs = captureBothFormats();
  memory = await startMemoryServer({
    logger: logs.logger,
    // The health check's honest rounds must finish on a loaded machine too (a 100,000-case run
    // beside other work once missed a 2 s deadline); nothing here waits for a round to time out.
    config: { quorum: 2, roundTimeoutMs: 10_000, handshakeTimeoutMs: 60_000 },
  });
  await memory.contributors(2);
});

after(async () => {
  await memory.close();
});

/** After every case: nothing unprintable in the logs; every HEALTH_EVERY cases, a round runs. */
async function afterCase(): Promise<void> {
  for (const line of logs.take()) {
    assert.equal(
      hasUnprintable(line),
      false,
      `log line with a raw control character: ${JSON.stringify(line)}`,
    );
  }
  if (++cases % HEALTH_EVERY === 0) await healthCheck();
}

async function healthCheck(): Promise<void> {
  assert.equal(memory.server.connectedContributors.length >= 2, true, "honest contributors stay");
  const record = await memory.server.runRound({ purpose: "otp" });
  assert.equal(record.participants.length >= 2, true);
}

function assertError(
  reply: AnyMessage | "closed",
  what: string,
): Extract<AnyMessage, { type: "error" }> {
  assert.ok(reply !== "closed", `${what}: closed without an error`);
  assert.equal(reply.type, "error", `${what}: answered ${reply.type}`);
  const error = reply as Extract<AnyMessage, { type: "error" }>;
  assert.ok(CODES.has(error.code), `${what}: unknown code ${error.code}`);
  assert.equal(hasUnprintable(error.message), false, `${what}: unprintable error message`);
  return error;
}

// ---- handshake -------------------------------------------------------------------------------------

function handshakeTemplates(hello: Probe["hello"]): Record<string, Json>[] {
  const identity = generateKeyPairSync("ed25519");
  const raw = rawPublicKey(identity.publicKey);
  const clientChallenge = randomBytes(32);
  const name = "fuzz";
  const signature = signMessage(
    identity.privateKey,
    joinSignedData(
      fromBase64url(hello.challenge, "c", 32),
      hello.server.fingerprint,
      raw,
      "",
      name,
      clientChallenge,
    ),
  );
  return [
    {
      type: "join",
      v: V,
      identity: toBase64url(raw),
      name,
      clientChallenge: toBase64url(clientChallenge),
      signature: toBase64url(signature),
    },
    {
      type: "join",
      v: V,
      identity: b64(32),
      token: `dkt_${b64(12)}.${b64(32)}`,
      clientChallenge: b64(32),
      signature: b64(64),
    },
    // A key that is no curve point (y ≥ p), with a token, and a signature over another challenge.
    {
      type: "join",
      v: V,
      identity: toBase64url(Buffer.alloc(32, 0xff)),
      token: `dkt_${b64(12)}.${b64(32)}`,
      clientChallenge: b64(32),
      signature: b64(64),
    },
    {
      type: "join",
      v: V,
      identity: toBase64url(raw),
      clientChallenge: toBase64url(clientChallenge),
      signature: toBase64url(
        signMessage(
          identity.privateKey,
          joinSignedData(randomBytes(32), hello.server.fingerprint, raw, "", "", clientChallenge),
        ),
      ),
    },
    { type: "admin.auth", v: V, clientChallenge: b64(32), proof: b64(32) },
    { type: "admin.frame", v: V, seq: 0, body: "{}", mac: b64(32) },
    {
      type: "commit",
      v: V,
      roundId: b64(16),
      contributorId: `SHA256:${"A".repeat(43)}`,
      commitment: b64(32),
      signature: b64(64),
    },
    {
      type: "reveal",
      v: V,
      roundId: b64(16),
      contributorId: `SHA256:${"A".repeat(43)}`,
      setHash: b64(32),
      envelope: {
        alg: "RSA-OAEP-256/A256GCM",
        ek: b64(384),
        iv: b64(12),
        ct: b64(64),
        tag: b64(16),
      },
      signature: b64(64),
    },
    ...goldenFor(SESSION_ACCEPTS.handshake),
  ];
}

test("every broken first message gets one error with a stable code, then the connection closes", async () => {
  const started = performance.now();
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.nat(), mutation, async (which, m) => {
      runs++;
      const probe = await Probe.open(memory.dial);
      const templates = handshakeTemplates(probe.hello);
      probe.send(breakMessage(pick(templates, which), m));
      const error = assertError(await probe.next(), `handshake ${m.kind}`);
      assert.equal(error.fatal, true);
      assert.equal(await probe.next(), "closed");
      await afterCase();
    }),
    fuzzParameters(150),
  );
  reportFuzz("ws handshake", runs, started);
});

// ---- an enrolled contributor -----------------------------------------------------------------------

class FuzzContributor {
  readonly identity = generateKeyPairSync("ed25519");
  probe!: Probe;
  enrolled = false;
  /** The size this witness last cosigned. */
  cosigned = 0;

  /** Its cosignature (key ID ‖ cosignature/v1) of a checkpoint note, base64url. */
  cosign(note: string): string {
    const id = contributorIdOf(this.raw);
    const seed = Buffer.from(this.identity.privateKey.export({ format: "jwk" }).d!, "base64url");
    const signer = cosignatureSigner(witnessKeyName(id), seed, () => 1_795_000_000);
    const out = new Uint8Array(76);
    new DataView(out.buffer).setUint32(0, signer.keyId);
    out.set(signer.sign(new TextEncoder().encode(parseNote(note).text)), 4);
    return toBase64url(out);
  }

  get raw(): Uint8Array {
    return rawPublicKey(this.identity.publicKey);
  }

  /** Joins (enrolling the first time) on a fresh connection. */
  async join(dial: () => Promise<Connection>, dataDir: string): Promise<void> {
    this.probe = await Probe.open(dial);
    // An honest commit and reveal in every round, each kept to be replayed later into others.
    const pending = new Map<string, RawContribution>();
    const sendKept = (message: unknown) => {
      const frame = JSON.stringify(message);
      this.probe.send(frame);
      replays.push(frame);
      if (replays.length > 64) replays.shift();
    };
    this.probe.onRound = (message) => {
      if (message.type === "round.open") {
        const contribution = buildContribution(this.asRawPeer(), message);
        pending.set(message.roundId, contribution);
        sendKept(contribution.commit);
      } else if (message.type === "round.commits") {
        const contribution = pending.get(message.roundId);
        if (!contribution) return;
        const setHash = setHashOf(this.asRawPeer(), message);
        sendKept(buildReveal(this.asRawPeer(), { ...contribution, setHash }));
      } else if (message.type === "round.closed") {
        pending.delete(message.roundId);
      } else if (message.type === "log.checkpoint") {
        // A witness that cosigns whatever it is sent (the checks are witness.test.ts's), so the
        // rounds here are witnessed and complete.
        if (message.old !== this.cosigned) {
          this.probe.send(JSON.stringify({ type: "log.conflict", v: V, size: this.cosigned }));
          return;
        }
        const size = Number(message.checkpoint.split("\n")[1]);
        this.cosigned = size;
        this.probe.send(
          JSON.stringify({
            type: "log.cosign",
            v: V,
            size,
            cosignature: this.cosign(message.checkpoint),
          }),
        );
      }
    };
    const token = this.enrolled ? undefined : (await issueEnrollmentToken(dataDir)).token;
    const clientChallenge = randomBytes(32);
    const signature = signMessage(
      this.identity.privateKey,
      joinSignedData(
        fromBase64url(this.probe.hello.challenge, "c", 32),
        this.probe.hello.server.fingerprint,
        this.raw,
        token ?? "",
        "",
        clientChallenge,
      ),
    );
    this.probe.send(
      JSON.stringify({
        type: "join",
        v: V,
        identity: toBase64url(this.raw),
        clientChallenge: toBase64url(clientChallenge),
        signature: toBase64url(signature),
        ...(token === undefined ? {} : { token }),
      }),
    );
    const welcome = await this.probe.next();
    assert.ok(welcome !== "closed" && welcome.type === "welcome", JSON.stringify(welcome));
    this.enrolled = true;
  }

  /** What buildContribution needs of a peer. */
  asRawPeer(): RawPeer {
    return {
      hello: this.probe.hello,
      contributorIdentity: this.raw,
      identity: this.identity,
    } as unknown as RawPeer;
  }

  templates(): Record<string, Json>[] {
    const made = buildContribution(this.asRawPeer(), { roundId: b64(16) });
    const commit = made.commit as unknown as Record<string, Json>;
    const reveal = buildReveal(this.asRawPeer(), {
      ...made,
      setHash: randomBytes(32),
    }) as unknown as Record<string, Json>;
    return [
      commit,
      reveal,
      { ...commit, contributorId: `SHA256:${"A".repeat(43)}` },
      { ...reveal, contributorId: `SHA256:${"A".repeat(43)}` },
      // Signed over another round id than the one it names.
      { ...commit, roundId: b64(16) },
      { ...reveal, roundId: b64(16) },
      {
        type: "join",
        v: V,
        identity: toBase64url(this.raw),
        clientChallenge: b64(32),
        signature: b64(64),
      },
      { type: "admin.auth", v: V, clientChallenge: b64(32), proof: b64(32) },
      {
        type: "admin.frame",
        v: V,
        seq: 0,
        body: `{"type":"admin.status","v":${V},"requestId":"x"}`,
        mac: b64(32),
      },
      {
        type: "round.receipt",
        v: V,
        roundId: b64(16),
        contributorId: `SHA256:${"A".repeat(43)}`,
        setHash: b64(32),
        commitment: b64(32),
        signature: b64(384),
      },
      // A cosignature that does not verify, of a size that may or may not be offered.
      { type: "log.cosign", v: V, size: 0, cosignature: b64(76) },
      { type: "log.cosign", v: V, size: memory.server.log.size, cosignature: b64(76) },
      // A conflict naming a larger tree than the log holds.
      { type: "log.conflict", v: V, size: Number.MAX_SAFE_INTEGER },
      // An answer to a key recovery nobody asked this contributor for (§16.8).
      {
        type: "dkg.recovered",
        v: V,
        recoveryId: b64(16),
        keyId: "01JDKGEN0000000000000000TK",
        outcome: "refused",
        reason: "certificate",
      },
      ...goldenFor(SESSION_ACCEPTS.contributor),
    ];
  }
}

test("every broken message from an enrolled contributor gets an error with a stable code; rounds go on", async () => {
  const started = performance.now();
  const peer = new FuzzContributor();
  await peer.join(memory.dial, memory.dataDir);
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.nat(), mutation, fc.boolean(), async (which, m, replay) => {
      runs++;
      if (peer.probe.closed) await peer.join(memory.dial, memory.dataDir);
      const frame =
        replay && replays.length > 0
          ? replays[which % replays.length]!
          : breakMessage(pick(peer.templates(), which), m);
      peer.probe.send(frame);
      if (answeredWithCheckpoint(frame)) return; // a conflict it can act on: a checkpoint, no error
      const error = assertError(await peer.probe.next(), `contributor ${m.kind}`);
      if (error.fatal) assert.equal(await peer.probe.next(), "closed");
      await afterCase();
    }),
    fuzzParameters(150),
  );
  peer.probe.connection.close(1000);
  reportFuzz("ws contributor", runs, started);
});

/** A log.conflict the server acts on (its size within the log): it resends, it does not refuse. */
function answeredWithCheckpoint(frame: string): boolean {
  try {
    const message = decodeMessage(frame);
    return message.type === "log.conflict" && message.size <= memory.server.log.size;
  } catch {
    return false;
  }
}

// ---- an authenticated admin -------------------------------------------------------------------------

class FuzzAdmin {
  probe!: Probe;
  keys!: ReturnType<typeof adminSessionKeys>;
  opener!: AdminChannel;
  seq = 0;

  async connect(server: MemoryServer): Promise<void> {
    this.probe = await Probe.open(server.dial);
    const clientChallenge = new Uint8Array(randomBytes(32));
    const challenge = fromBase64url(this.probe.hello.challenge, "c", 32);
    const fingerprint = this.probe.hello.server.fingerprint;
    const token = server.adminToken.expose();
    const proof = createHmac("sha256", token)
      .update(adminProofData(challenge, fingerprint, clientChallenge))
      .digest();
    this.probe.send(
      JSON.stringify({
        type: "admin.auth",
        v: V,
        clientChallenge: toBase64url(clientChallenge),
        proof: toBase64url(proof),
      }),
    );
    const ready = await this.probe.next();
    assert.ok(ready !== "closed" && ready.type === "admin.ready");
    this.keys = adminSessionKeys(token, challenge, clientChallenge, fingerprint);
    this.opener = new AdminChannel(this.keys, "admin");
    this.seq = 0;
  }

  /** An admin.frame around `body` with the right sequence number and MAC. */
  seal(body: string): string {
    const seq = this.seq++;
    const mac = createHmac("sha256", this.keys.toServer as KeyObject)
      .update(adminFrameMacData("to-server", seq, body))
      .digest();
    return JSON.stringify({ type: "admin.frame", v: V, seq, body, mac: toBase64url(mac) });
  }

  /** The next answer, opened (every answer to an admin is sealed). */
  async answer(): Promise<AnyMessage | "closed"> {
    const reply = await this.probe.next();
    if (reply === "closed") return reply;
    assert.equal(reply.type, "admin.frame", `an admin was answered with a bare ${reply.type}`);
    return this.opener.open(reply as Extract<AnyMessage, { type: "admin.frame" }>);
  }
}

/** What a sealed admin command may be answered with, but an error. */
const ADMIN_ANSWERS: ReadonlySet<string> = new Set([
  "admin.round",
  "admin.status.result",
  "admin.export.result",
  "admin.opening.result",
  "admin.threshold.key",
  "admin.threshold.signature",
  "admin.threshold.recovery",
]);

/** Commands an admin sends sealed; then, from adminTemplates(), the golden frames of every type. */
const innerTemplates: Record<string, Json>[] = [
  { type: "admin.status", v: V, requestId: "fuzz-1" },
  { type: "admin.generate", v: V, requestId: "fuzz-2", purpose: "otp", params: { digits: 6 } },
  {
    type: "admin.generate",
    v: V,
    requestId: "fuzz-3",
    purpose: "totp",
    params: { issuer: "ACME", account: "a" },
  },
  { type: "admin.generate", v: V, requestId: "fuzz-4", purpose: "nope", params: {} },
  // A recovery of a threshold key that does not exist (§16.8).
  {
    type: "admin.threshold.recover",
    v: V,
    requestId: "fuzz-7",
    keyId: "01JDKGEN0000000000000000TK",
  },
  {
    type: "admin.generate",
    v: V,
    requestId: "fuzz-5",
    purpose: "ecc",
    params: { curve: "p256" },
    owner: "nobody",
  },
  {
    type: "admin.generate",
    v: V,
    requestId: "fuzz-6",
    purpose: "otp",
    params: {},
    revealTo: b64(300),
  },
  // The opening of a record that does not exist, to a revealTo that is no key (§15.6).
  {
    type: "admin.opening",
    v: V,
    requestId: "fuzz-8",
    recordId: "01JDKGEN00000000000000000X",
    revealTo: b64(300),
  },
  {
    type: "reveal",
    v: V,
    roundId: b64(16),
    contributorId: `SHA256:${"A".repeat(43)}`,
    setHash: b64(32),
    envelope: { alg: "RSA-OAEP-256/A256GCM", ek: b64(384), iv: b64(12), ct: b64(64), tag: b64(16) },
    signature: b64(64),
  },
];

/**
 * What the admin sends inside a frame (or bare): the commands above and the golden frames, among
 * them the threshold commands (keygen, sign, refresh, recover) of keys this server does not hold.
 */
function adminTemplates(): Record<string, Json>[] {
  return [...innerTemplates, ...goldenFor([])];
}

test("every broken admin command, sealed or not, gets a sealed answer with a stable code; a broken seal ends the session", async () => {
  const started = performance.now();
  const admin = new FuzzAdmin();
  await admin.connect(memory);
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.nat(), mutation, fc.nat(9), async (which, m, outer) => {
      runs++;
      if (admin.probe.closed) await admin.connect(memory);
      const inner = breakMessage(pick(adminTemplates(), which), m);
      if (outer === 0) {
        // The frame itself broken (its version, sequence number, body or MAC): a wrong seal ends
        // the session; a frame refused before its seal was checked gets an error. Either way this
        // case starts a new session afterwards, so the sequence numbers cannot drift apart.
        const sealed = JSON.parse(admin.seal(inner)) as Record<string, Json>;
        const field = (["v", "seq", "body", "mac"] as const)[which % 4]!;
        const replacement: Json = m.kind === "add" || m.kind === "replace" ? m.value : 0;
        const unchanged = JSON.stringify(sealed[field]) === JSON.stringify(replacement);
        admin.probe.send(JSON.stringify({ ...sealed, [field]: replacement }));
        const reply = await admin.answer();
        if (!unchanged) {
          const error = assertError(reply, `admin frame ${field}`);
          if (error.fatal) assert.equal(await admin.probe.next(), "closed");
        }
        admin.probe.connection.close(1000);
        while ((await admin.probe.next()) !== "closed") {
          // Whatever was still on its way is dropped with the session.
        }
      } else if (outer === 1) {
        // A bare message where only frames are taken.
        admin.probe.send(inner);
        const error = assertError(await admin.answer(), `bare admin ${m.kind}`);
        // The peer's maxPeerErrors-th mistake ends its session.
        if (error.fatal) assert.equal(await admin.probe.next(), "closed");
      } else {
        admin.probe.send(admin.seal(inner));
        const reply = await admin.answer();
        assert.ok(reply !== "closed", "an admin command closed the session");
        if (reply.type === "error") {
          const error = assertError(reply, `sealed admin ${m.kind}`);
          if (error.fatal) assert.equal(await admin.probe.next(), "closed");
        } else {
          assert.ok(ADMIN_ANSWERS.has(reply.type), reply.type);
        }
      }
      await afterCase();
    }),
    fuzzParameters(100),
  );
  reportFuzz("ws admin", runs, started);
});

// ---- every message type in every state ---------------------------------------------------------------

test("every message type of the schema table has a well-formed template in every session state", async () => {
  const probe = await Probe.open(memory.dial);
  const peer = new FuzzContributor();
  peer.probe = probe; // its templates need only the server's hello
  const states: Record<string, Record<string, Json>[]> = {
    handshake: handshakeTemplates(probe.hello),
    contributor: peer.templates(),
    // Sealed in an admin frame, or bare.
    admin: adminTemplates(),
  };
  for (const [state, templates] of Object.entries(states)) {
    const wellFormed = new Set<string>();
    for (const template of templates) {
      try {
        wellFormed.add(decodeMessage(JSON.stringify(template)).type);
      } catch {
        // A template broken on purpose (a key off the curve is still well-formed; a purpose that
        // does not exist is not).
      }
    }
    const missing = Object.keys(SCHEMAS).filter((type) => !wellFormed.has(type));
    assert.deepEqual(missing, [], `${state}: no well-formed template of ${missing.join(", ")}`);
  }
  probe.connection.close(1000);
});

// ---- over real sockets, against a server process ---------------------------------------------------

test("a dkeygen server process fed broken frames over WebSocket keeps running and admitting contributors", async () => {
  const dir = await tempDir();
  const dataDir = join(dir.path, "server");
  const server = new CliProcess(serverArgs(dataDir, [], { http: false }));

  try {
    const url = (await server.waitFor(/(ws:\/\/127\.0\.0\.1:\d+)/, 60_000))[1]!;
    const dial = () => dialWs(url);
    const started = performance.now();
    let runs = 0;
    const peer = new FuzzContributor();
    await peer.join(dial, dataDir);
    await fc.assert(
      fc.asyncProperty(fc.nat(), mutation, fc.boolean(), async (which, m, first) => {
        runs++;
        if (first) {
          const probe = await Probe.open(dial);
          const templates = handshakeTemplates(probe.hello);
          probe.send(breakMessage(pick(templates, which), m));
          assertError(await probe.next(), `socket handshake ${m.kind}`);
          assert.equal(await probe.next(), "closed");
        } else {
          if (peer.probe.closed) await peer.join(dial, dataDir);
          peer.probe.send(breakMessage(pick(peer.templates(), which), m));
          const error = assertError(await peer.probe.next(), `socket contributor ${m.kind}`);
          if (error.fatal) assert.equal(await peer.probe.next(), "closed");
        }
      }),
      fuzzParameters(40, 0.05),
    );
    reportFuzz("ws over sockets (server process)", runs, started);
    // Still running, and still admitting an enrolled contributor.
    assert.equal(server.child.exitCode, null, "the server process is still running");
    const late = new FuzzContributor();
    await late.join(dial, dataDir);
    assert.equal(contributorIdOf(late.raw).startsWith("SHA256:"), true);
    assert.doesNotMatch(server.stderr + server.stdout, /unhandled|uncaught/i);
  } finally {
    await server.stop();
    await dir.remove();
  }
});
