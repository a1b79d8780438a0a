/**
 * The pool of ready OTPs. Background batch rounds keep about `size` unclaimed OTP records in the
 * store, so a request claims one at once instead of waiting for a round. Refills are single-flight
 * (one round at a time), start when the pool falls below half or a full round's batch (MAX_BATCH)
 * is missing, and run rounds until neither holds (so rounds run rarely and in large batches, not
 * after every claim or back to back under steady claims), and a timer retries a failed one. While
 * fewer contributors are connected than a round needs, refills wait for them quietly (no round is
 * tried, nothing is logged as failed); `contributorsChanged()` starts one as soon as they are. When the pool is empty a request waits for the refill in flight
 * up to `waitMs`, then gives up with E_UNAVAILABLE and a Retry-After.
 *
 * A refill's round hands its records out only once witnesses have cosigned a checkpoint covering
 * its log entry (PROTOCOL §15.5). The store decides that, not this pool: the round stores its
 * records held (KeyStore RecordInput.held), which no claim takes and `countUnclaimed` does not
 * count, and releases them once the entry is witnessed; a round not witnessed (or not logged)
 * leaves them held and consumes them. So any number of pools and processes may claim from one
 * store.
 *
 * The pool also keeps the codes of the OTPs its refills made ready in memory (handed over by the
 * round as each record is stored, before it is released), so handing one out does not decrypt and
 * parse its stored secret on the request path. The codes never leave the process except sealed to
 * a requester; OTPs made before a restart, or by another process, are read from the store when
 * claimed.
 *
 * Without `rounds` the pool only claims (a `dkeygen distributor`, distributor.ts): the key generation
 * server on the same store refills it, so an empty pool is polled every `pollMs` for up to the
 * request's wait, and no round is ever tried here.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { DkeygenError, describeError, ErrorCodes } from "../../errors.js";
import type { JsonObject } from "../../json.js";
import type { Logger } from "../../logging.js";
import type { ClaimInput, ClaimOptions, KeyRecord, KeyStore } from "../../store/types.js";
import { MAX_BATCH, type RoundRequest } from "../round-request.js";
import { readStoredSecret } from "../stored-secret.js";

/** How a contributor joins the server at `url` (a WebSocket URL): for messages about too few. */
export function contributorJoinHint(url: string): string {
  return `start one with: dkeygen contributor --server ${url} --token-file FILE (FILE: a token from dkeygen enroll)`;
}

/** A claimed OTP: its record and its code. */
export interface ClaimedOtp {
  record: KeyRecord;
  code: string;
}

export interface BatchRoundRunner {
  runBatchRound(request: RoundRequest): Promise<KeyRecord[]>;
}

export interface OtpPoolOptions {
  store: KeyStore;
  /** Runs the refills; absent: a claim-only pool, refilled by another process on the store. */
  rounds?: BatchRoundRunner;
  /** How many unclaimed OTPs to keep ready. */
  size: number;
  /** Digits of the pooled OTPs. */
  digits: number;
  logger: Logger;
  /** How often to retry filling after a failure. */
  retryMs?: number;
  /** Contributors connected now and how many a round needs; without it, rounds are just tried. */
  quorum?: () => { connected: number; needed: number };
  /**
   * The WebSocket URL contributors join the server at: a request that finds too few connected is
   * told it, and the command that starts one.
   */
  contributorUrl?: string;
  /**
   * Whether a round's entry is in the transparency log. A record whose round is not is withdrawn
   * when claimed, never handed out. Without it, every stored record counts as logged. Records
   * stored held never need it (a round the server never logged is never released); it guards
   * records stored before held records existed, when the server stopping between storing a
   * round's records and logging the round left them claimable.
   */
  logged?: (roundId: string) => Promise<boolean>;
  /** A claim-only pool looks for refills by another process this often while a request waits. */
  pollMs?: number;
  /**
   * Other processes claim from this store too (PostgreSQL with distributors): a refilling pool
   * then looks at the stock every `watchMs` (their claims do not pass through it), and keeps no
   * codes in memory (the records it made are mostly claimed elsewhere: the map would only grow).
   */
  shared?: boolean;
  /** How often a shared refilling pool counts the stock (default 200 ms). */
  watchMs?: number;
}

/** How often a refilling pool on a shared store looks whether others' claims emptied it. */
export const SHARED_WATCH_MS = 200;

/** How often a claim-only pool looks again while a request waits for the server's refill. */
export const CLAIM_POLL_MS = 100;

export const OTP_PURPOSE = "otp";

/**
 * OTP claims do not wait for their own fsync: the store leases records ahead, so a crash can void
 * a handed-out OTP (it then fails verification and the user asks again) but never hand one out
 * twice (KeyStore ClaimOptions).
 */
const RESERVED: ClaimOptions = { ack: "reserved" };

export class OtpPool {
  readonly #o: Required<Omit<OtpPoolOptions, "rounds" | "contributorUrl">> &
    Pick<OtpPoolOptions, "contributorUrl">;
  readonly #rounds: BatchRoundRunner | undefined;
  #refilling: Promise<void> | undefined;
  #lastError: string | undefined;
  /** When the last refill or check failed (Date.now()). */
  #failedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Requests waiting for an OTP right now: a refill makes at least this many. */
  #waiting = 0;
  /** The codes of unclaimed OTPs this pool's refills made, by record id. */
  readonly #codes = new Map<string, string>();

  constructor(options: OtpPoolOptions) {
    this.#o = {
      retryMs: 5000,
      quorum: () => ({ connected: Number.POSITIVE_INFINITY, needed: 0 }),
      logged: async () => true,
      pollMs: CLAIM_POLL_MS,
      shared: false,
      watchMs: SHARED_WATCH_MS,
      ...options,
    };
    this.#rounds = options.rounds;
  }

  /** Whether this pool refills itself (false: it only claims what another process made). */
  get refills(): boolean {
    return this.#rounds !== undefined;
  }

  get size(): number {
    return this.#o.size;
  }

  /** Why the last refill failed, if it did (for readiness reports). */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  start(): void {
    if (this.#rounds === undefined) return;
    this.#timer = setInterval(
      () => this.#refillIfLow(),
      this.#o.shared ? this.#o.watchMs : this.#o.retryMs,
    );
    this.#timer.unref();
    this.refill().catch((error: unknown) => this.#refillFailed(error));
  }

  /**
   * Refills when below half, or when the last refill failed. Runs in the background (a timer, a
   * claim), so it handles its own failures: a store that closed meanwhile must not become an
   * unhandled rejection.
   */
  #refillIfLow(): void {
    if (this.#stopped || this.#rounds === undefined) return;
    // A shared pool looks every watchMs, but tries again after a failure only every retryMs.
    const retryDue = !this.#o.shared || Date.now() >= this.#failedAt + this.#o.retryMs;
    const check = async () => {
      if (
        (this.#lastError !== undefined && retryDue) ||
        (this.#lastError === undefined && this.#due(await this.available()))
      ) {
        await this.refill();
      }
    };
    check().catch((error: unknown) => this.#refillFailed(error));
  }

  /**
   * Whether a refill is due with `available` unclaimed: below half, or a full round's batch
   * missing (a pool larger than two batches is topped up in full batches, never in small ones).
   */
  #due(available: number): boolean {
    const missing = this.#o.size - available;
    return missing > this.#o.size / 2 || missing >= MAX_BATCH;
  }

  #refillFailed(error: unknown): void {
    if (this.#stopped) return;
    const reason = describeError(error);
    this.#o.logger.warn({ err: reason }, "OTP pool check failed; will retry");
    this.#lastError = reason;
    this.#failedAt = Date.now();
  }

  /** Contributors joined or left: a refill that was waiting for them starts now. */
  contributorsChanged(): void {
    if (this.#waitingForQuorum() === undefined) this.#refillIfLow();
  }

  /** Why no round can run now (too few contributors), or undefined when one can. */
  #waitingForQuorum(): string | undefined {
    const { connected, needed } = this.#o.quorum();
    if (connected >= needed) return undefined;
    const at = this.#o.contributorUrl === undefined ? "" : ` at ${this.#o.contributorUrl}`;
    return `waiting for contributors${at}: ${connected} connected, a round needs ${needed}`;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#refilling?.catch(() => {});
    this.#codes.clear();
  }

  available(): Promise<number> {
    return this.#o.store.countUnclaimed(OTP_PURPOSE);
  }

  /** Fills the pool up to its size; resolves when the refill in flight (if any) is done. */
  refill(): Promise<void> {
    if (this.#stopped || this.#rounds === undefined) return Promise.resolve();
    this.#refilling ??= this.#fill().finally(() => {
      this.#refilling = undefined;
    });
    return this.#refilling;
  }

  async #fill(): Promise<void> {
    const rounds = this.#rounds;
    if (rounds === undefined) return;
    try {
      for (let first = true; ; first = false) {
        // With a pool of size 0 (or a burst beyond it), rounds are run on demand for the waiters.
        const available = await this.available();
        const missing = Math.max(this.#o.size, this.#waiting) - available;
        if (missing <= 0 || this.#stopped) break;
        // After the first, a round runs only when one is due again or requests wait. Under steady
        // claims, topping up what the last round's own time used would run small rounds back to
        // back for good, each a log entry kept forever and a round's work for every contributor.
        if (!first && this.#waiting === 0 && !this.#due(available)) break;
        const waiting = this.#waitingForQuorum();
        if (waiting !== undefined) {
          // Not a failure: the pool fills once contributors join (contributorsChanged).
          this.#lastError = waiting;
          return;
        }
        const count = Math.min(missing, MAX_BATCH);
        await rounds.runBatchRound({
          purpose: OTP_PURPOSE,
          params: { digits: this.#o.digits },
          count,
          // Stored held: told before any claim can take it.
          ...(this.#o.shared
            ? {}
            : {
                onStored: (record: KeyRecord, output: JsonObject) =>
                  this.#codes.set(record.id, String(output.code)),
              }),
        });
        this.#o.logger.debug({ added: count }, "OTP pool refilled");
      }
      this.#lastError = undefined;
    } catch (error) {
      const reason = describeError(error);
      // Said once at warn level; the same reason again (say, still no contributors) at debug.
      const log = reason === this.#lastError ? this.#o.logger.debug : this.#o.logger.warn;
      log.call(this.#o.logger, { err: reason }, "OTP pool refill failed; will retry");
      this.#lastError = reason;
      this.#failedAt = Date.now();
    }
  }

  async #readCode(id: string): Promise<string> {
    return String((await readStoredSecret(this.#o.store, id)).output.code);
  }

  /**
   * Claims the oldest claimable record (the store never hands out a held one), withdrawing
   * (consuming, unseen) any whose round is not logged.
   */
  async #claimLogged(claim: ClaimInput): Promise<KeyRecord | undefined> {
    for (;;) {
      const record = await this.#o.store.claimNext(OTP_PURPOSE, claim, RESERVED);
      if (record === undefined || (await this.#o.logged(record.roundId))) return record;
      await this.#o.store.consume(record.id);
      this.#codes.delete(record.id);
      this.#o.logger.warn(
        { recordId: record.id, roundId: record.roundId },
        "an OTP whose round is not in the transparency log was withdrawn, not handed out",
      );
    }
  }

  /**
   * Claims a ready OTP for `claim`. If none is ready, waits up to `waitMs` for a refill, then
   * throws E_UNAVAILABLE with a Retry-After.
   */
  async claim(claim: ClaimInput, waitMs: number): Promise<ClaimedOtp> {
    let record = await this.#claimLogged(claim);
    if (!record && waitMs > 0) {
      // Wait for refills until one leaves an OTP for this request or the time is up. (A refill
      // that was already finishing when this request arrived may have been sized without it.)
      this.#waiting++;
      let timer: NodeJS.Timeout | undefined;
      let timedOut = false;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          timedOut = true;
          resolve();
        }, waitMs);
      });
      try {
        while (!record && !timedOut && !this.#stopped) {
          // A claim-only pool cannot refill: it looks again for the server's refill.
          const refill =
            this.#rounds === undefined
              ? sleep(this.#o.pollMs, undefined, { ref: false })
              : this.refill();
          await Promise.race([refill, timeout]);
          record = await this.#claimLogged(claim);
          // A refill that failed (no contributors, say) is not retried here at once.
          if (!record && this.#lastError !== undefined) break;
        }
      } finally {
        clearTimeout(timer);
        this.#waiting--;
      }
    }
    if (!record) {
      throw new DkeygenError(
        ErrorCodes.UNAVAILABLE,
        this.#rounds === undefined
          ? "No OTP is ready: this distributor only hands out OTPs the dkeygen server on its store makes, and none is ready yet; retry shortly."
          : this.#waitingForQuorum() !== undefined
            ? `No OTP is ready: ${this.#waitingForQuorum()}; ${this.#o.contributorUrl === undefined ? "" : `${contributorJoinHint(this.#o.contributorUrl)}, and `}retry once they have joined.`
            : this.#lastError
              ? "No OTP is ready and no round could make one just now; retry shortly."
              : "No OTP is ready yet; retry shortly.",
        { retryAfterSeconds: Math.max(1, Math.ceil(this.#o.retryMs / 1000)) },
      );
    }
    // Keep the pool topped up in the background once it falls below half.
    if (this.#refilling === undefined) this.#refillIfLow();
    const code = this.#codes.get(record.id);
    if (code !== undefined) {
      this.#codes.delete(record.id);
      return { record, code };
    }
    return { record, code: await this.#readCode(record.id) };
  }
}
