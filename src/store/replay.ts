/**
 * Replay: reading a `key_store` file's lines (log-format.ts, docs/PROTOCOL.md §10) back into the
 * state a FileKeyStore serves, verifying the MAC chain and holding every line to the record rules
 * (record-rules.ts). Pure: lines in, state or the first failure out — no file, clock or logger —
 * so it is tested from a table of line sequences (test/store/replay.test.ts). The store feeds it
 * the file's lines as it reads them (`Replayer`); `replay` does the same for lines in memory.
 *
 * - A last line without its newline is a torn write: replay stops before it and names it; the
 *   store sets it aside.
 * - Any complete line that fails (MAC, schema, a rule) is corruption at that line. When line 1
 *   fails but carries a MAC and line 2 does not chain from that MAC either, the likeliest cause by
 *   far is the wrong store key, reported as such.
 * - At the end, records leased and neither claimed nor released are void (`voided`): the store
 *   that leased them stopped first, and may have handed them out with a claim line that was lost.
 */

import { type LineRef, lineRef, packSealed, RecordInterner } from "./compact-memory.js";
import type { RecordPart, StoreKeys } from "./log-format.js";
import {
  BodyError,
  type Carrier,
  CHAIN_START,
  type ChainPoint,
  checkLine,
  type LineCheck,
  MAX_LINE_BYTES,
  type ParsedBody,
  parseBody,
  type Segment,
} from "./log-format.js";
import type { RetirePolicy } from "./record-index.js";
import { describeRefusal, RecordCore, type Refusal } from "./record-rules.js";
import { RoundSecrets } from "./round-secrets.js";
import type { Claim, KeyRecord } from "./types.js";

/** What a file's lines add up to. */
export interface ReplayState {
  core: RecordCore;
  /** Where each round's opening line is, by round id (read from the file when needed). */
  openings: Map<string, LineRef>;
  /** The round secrets live records refer to (and any no record has referred to yet). */
  roundSecrets: RoundSecrets;
  /** Where the transparency log's entries are, in index order. */
  leaves: LineRef[];
  /** Verified lines, and the MAC of the last (the chain's head; CHAIN_START for none). */
  lines: number;
  head: Uint8Array;
  /** Bytes of the verified lines, from the start of the file. */
  size: number;
  /** The last line, when it has no newline (a torn write), left out of everything above. */
  torn: Segment | undefined;
  /** The chain MAC after line `watch`, when the file has that many lines. */
  atWatch: Uint8Array | undefined;
  /** Leases that became void at the end (leased, neither claimed nor released). */
  voided: number;
  /** Records retired, counted per second of their retirement: [ms of the second, count], in
   * file order. */
  retired: Array<[number, number]>;
  /** Set when the file is a compaction's output (line 1 a compacted line): where the old file's
   * chain was cut, and (once written) its final position at the switch. */
  compaction: Compaction | undefined;
  /** The last record line with `participants` (log-format.ts Carrier), if any. */
  carrier: Carrier | undefined;
}

export interface Compaction {
  generation: number;
  from: ChainPoint;
  switched: ChainPoint | undefined;
}

export type ReplayFailure =
  | { kind: "corrupt"; line: number; reason: string }
  /** Line 1 verifies under no key we know, nor does line 2 chain from it: the wrong store key. */
  | { kind: "wrong-key" };

export type ReplayResult = ({ ok: true } & ReplayState) | ({ ok: false } & ReplayFailure);

/** Replays a file held as lines (`segmentsOf`); `watch` as in `Replayer`. */
export function replay(
  keys: Pick<StoreKeys, "mac">,
  segments: Iterable<Segment>,
  watch?: number,
  retireAt?: RetirePolicy,
): ReplayResult {
  const replayer = new Replayer(keys.mac, watch, retireAt);
  for (const segment of segments) {
    const failure = replayer.feed(segment);
    if (failure) return { ok: false, ...failure };
    if (replayer.done) break;
  }
  const end = replayer.finish();
  return "kind" in end ? { ok: false, ...end } : { ok: true, ...end };
}

/** A file's bytes as the segments `readSegments` (log-format.ts) yields for it. */
export function segmentsOf(file: Uint8Array): Segment[] {
  const bytes = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const out: Segment[] = [];
  let start = 0;
  while (start < bytes.length) {
    const newline = bytes.indexOf(0x0a, start);
    const stop = newline === -1 ? bytes.length : newline;
    const line = bytes.subarray(start, stop);
    out.push({
      bytes: line.length > MAX_LINE_BYTES ? undefined : Buffer.from(line),
      start,
      end: newline === -1 ? stop : stop + 1,
      complete: newline !== -1,
    });
    start = stop + 1;
  }
  return out;
}

/**
 * Replays one line at a time, as they are read: `feed` each segment in file order until it
 * returns a failure or `done` is true (after a torn tail), then `finish`.
 */
export class Replayer {
  readonly #mac: Uint8Array;
  readonly #watch: number | undefined;
  readonly #state: ReplayState;
  /** Line 1 failed with a MAC of its own: line 2 decides between corruption and a wrong key. */
  #firstLine: { reason: string; claimedMac: Uint8Array } | undefined;
  #finished = false;
  readonly #interner = new RecordInterner();

  /** `watch`: a line number whose chain MAC to report (`atWatch`), e.g. the head file's. */
  constructor(macKey: Uint8Array, watch?: number, retireAt?: RetirePolicy) {
    this.#mac = macKey;
    this.#watch = watch;
    this.#state = {
      core: new RecordCore(retireAt),
      openings: new Map(),
      roundSecrets: new RoundSecrets(),
      leaves: [],
      lines: 0,
      head: CHAIN_START,
      size: 0,
      torn: undefined,
      atWatch: watch === 0 ? CHAIN_START : undefined,
      voided: 0,
      retired: [],
      compaction: undefined,
      carrier: undefined,
    };
  }

  /** True once a torn tail ended the file: nothing after it is read. */
  get done(): boolean {
    return this.#state.torn !== undefined;
  }

  /** Takes the next segment; the first failure, if this segment brings one. */
  feed(segment: Segment): ReplayFailure | undefined {
    if (this.#finished || this.done) throw new Error("Replayer: fed after its end");
    if (this.#firstLine) return this.#judgeFirstLine(segment);
    if (!segment.complete) {
      this.#state.torn = segment;
      return undefined;
    }
    const line = this.#state.lines + 1;
    const check: LineCheck = segment.bytes
      ? checkLine(this.#mac, this.#state.head, segment.bytes)
      : { ok: false, reason: `it is longer than ${MAX_LINE_BYTES} bytes` };
    if (!check.ok) {
      if (line === 1 && check.claimedMac) {
        this.#firstLine = { reason: check.reason, claimedMac: check.claimedMac };
        return undefined;
      }
      return corrupt(line, check.reason);
    }
    let parsed: ParsedBody;
    try {
      parsed = parseBody(check.value);
    } catch (error) {
      if (error instanceof BodyError) return corrupt(line, error.message);
      throw error;
    }
    const reason = this.#apply(parsed, line, segment);
    if (reason !== undefined) return corrupt(line, reason);
    this.#state.head = check.mac;
    this.#state.lines = line;
    this.#state.size = segment.end;
    if (line === this.#watch) this.#state.atWatch = check.mac;
    return undefined;
  }

  /** Ends the replay: the state, or the failure a first line left pending. Voids live leases. */
  finish(): ReplayState | ReplayFailure {
    if (this.#finished) throw new Error("Replayer: finished twice");
    this.#finished = true;
    if (this.#firstLine) return { kind: "wrong-key" };
    this.#state.voided = this.#state.core.voidLeases();
    return this.#state;
  }

  #judgeFirstLine(segment: Segment): ReplayFailure {
    const first = this.#firstLine!;
    if (
      segment.complete &&
      segment.bytes &&
      checkLine(this.#mac, first.claimedMac, segment.bytes).ok
    ) {
      return corrupt(1, first.reason);
    }
    return { kind: "wrong-key" };
  }

  /** Applies a verified line; the reason it breaks the rules, if it does. */
  #apply(parsed: ParsedBody, line: number, segment: Segment): string | undefined {
    const state = this.#state;
    const core = state.core;
    switch (parsed.t) {
      case "rollback": {
        // It must describe the file exactly as it was when the rollback was accepted.
        if (
          parsed.found.lines !== line - 1 ||
          parsed.found.head !== Buffer.from(state.head).toString("hex")
        ) {
          return (
            'its rollback record does not describe the lines before it ("found" is not ' +
            `${line - 1} lines ending in the previous line's MAC)`
          );
        }
        return undefined;
      }
      case "retire": {
        const at = Date.parse(parsed.at);
        for (const id of parsed.ids) {
          const roundId = core.index.get(id)?.roundId;
          const part = core.index.payload(id);
          const refusal = core.retire(id, at);
          if (refusal) return describeRefusal(refusal);
          if (typeof part === "number") state.roundSecrets.unref(roundId!);
        }
        countRetired(state.retired, at, parsed.ids.length);
        for (const roundId of parsed.rounds) {
          if (!state.roundSecrets.has(roundId)) {
            return `it retires round ${roundId}'s secret, which the file does not hold`;
          }
          if (state.roundSecrets.live(roundId) > 0) {
            return `it retires round ${roundId}'s secret while a record of the round is live`;
          }
          state.roundSecrets.delete(roundId);
        }
        return undefined;
      }
      case "compacted": {
        if (line !== 1) return "a compacted record may only be the first line";
        state.compaction = {
          generation: parsed.generation,
          from: parsed.from,
          switched: undefined,
        };
        return undefined;
      }
      case "switched": {
        const compaction = state.compaction;
        if (!compaction || compaction.switched) {
          return "a switched record may only follow a compacted first line, once";
        }
        if (parsed.from.lines < compaction.from.lines) {
          return "its switched record names fewer old lines than the compaction started from";
        }
        compaction.switched = parsed.from;
        return undefined;
      }
      case "tlog": {
        if (parsed.index !== state.leaves.length) {
          return (
            `it holds log entry ${parsed.index} where entry ${state.leaves.length} is due ` +
            "(an entry skipped, repeated or reordered)"
          );
        }
        state.leaves.push(lineRef(segment.start, segment.bytes!));
        return undefined;
      }
      case "unhold": {
        const release = core.releaseRound(parsed.roundId);
        return "rule" in release ? describeRefusal(release) : undefined;
      }
      case "roundsecret": {
        if (state.roundSecrets.has(parsed.roundId)) {
          return `round ${parsed.roundId}'s secret appears a second time`;
        }
        state.roundSecrets.add(parsed.roundId, packSealed(parsed.sealed));
        return undefined;
      }
      case "opening": {
        if (state.openings.has(parsed.roundId)) {
          return `round ${parsed.roundId}'s opening appears a second time`;
        }
        state.openings.set(parsed.roundId, lineRef(segment.start, segment.bytes!));
        return undefined;
      }
      case "record":
        return this.#records([parsed], parsed.carried);
      case "records":
        return this.#records(parsed.records, parsed.carried);
      case "claim":
        return reasonOf(core.claim(parsed.id, parsed.claim));
      case "claims":
        return this.#claims(parsed.claims);
      case "consume":
        return reasonOf(core.consume(parsed.id, parsed.at));
      case "consumes":
        return this.#each(parsed.ids, (id) => core.consume(id, parsed.at));
      case "step":
        return reasonOf(core.useStep(parsed.id, parsed.step, parsed.at));
      case "lease":
        return this.#each(parsed.ids, (id) => core.lease(id));
      case "release":
        return this.#each(parsed.ids, (id) => core.release(id));
    }
  }

  /** A record line's record, or a records line's (the same round and participants). */
  #records(
    records: ReadonlyArray<{ record: KeyRecord; part: RecordPart }>,
    carried: boolean,
  ): string | undefined {
    const state = this.#state;
    const first = records[0]!.record;
    if (!carried) {
      state.carrier = { roundId: first.roundId, participants: first.participants };
    } else if (state.carrier?.roundId !== first.roundId) {
      return (
        `record ${first.id} leaves its participants out, but the last record line with ` +
        `participants before it is not of its round ${first.roundId}`
      );
    }
    const participants = state.carrier.participants;
    for (const { record, part } of records) {
      record.participants = participants;
      this.#interner.intern(record);
      if (typeof part === "number" && !state.roundSecrets.has(record.roundId)) {
        return `record ${record.id} has a part of round ${record.roundId}'s secret, which no earlier line holds`;
      }
      const refusal = state.core.add(record, typeof part === "number" ? part : packSealed(part));
      if (refusal) return describeRefusal(refusal);
      if (typeof part === "number") state.roundSecrets.ref(record.roundId);
    }
    return undefined;
  }

  #claims(claims: Array<{ id: string; claim: Claim }>): string | undefined {
    for (const { id, claim } of claims) {
      const refusal = this.#state.core.claim(id, claim);
      if (refusal) return describeRefusal(refusal);
    }
    return undefined;
  }

  #each(ids: string[], apply: (id: string) => Refusal | undefined): string | undefined {
    for (const id of ids) {
      const refusal = apply(id);
      if (refusal) return describeRefusal(refusal);
    }
    return undefined;
  }
}

/** Adds `count` records retired at `at` (ms) to per-second counts kept in time order. */
export function countRetired(counts: Array<[number, number]>, at: number, count: number): void {
  const second = at - (at % 1000);
  const last = counts[counts.length - 1];
  if (last && last[0] === second) last[1] += count;
  else counts.push([second, count]);
}

function corrupt(line: number, reason: string): ReplayFailure {
  return { kind: "corrupt", line, reason };
}

function reasonOf(refusal: Refusal | undefined): string | undefined {
  return refusal && describeRefusal(refusal);
}
