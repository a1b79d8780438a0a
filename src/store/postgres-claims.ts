/**
 * Claims on the PostgreSQL store, gathered per event-loop turn: every `claimNext` of one purpose
 * made in the same turn goes into one statement, which locks that many of the oldest poolable
 * rows (FOR UPDATE SKIP LOCKED) and claims each for its own request. Each claim is a real, durable
 * claim once the statement commits, exactly as one statement per claim would make it; what the
 * batch saves is the database's per-statement work, above all the walk from the start of the
 * pool index over the entries of records claimed since the last vacuum (docs/PROTOCOL.md §10.1
 * "Claim order"), paid once per batch instead of once per claim.
 *
 * Within a batch the oldest rows go to the earliest calls; calls beyond the rows found get none
 * (the pool had no more at that instant). A failed statement fails every call of its batch.
 */

/** Per claim: requester, subject, request id (stored names), claimed at, expires at. */
export type ClaimValues = [string, string, string, Date, Date];

/** At most this many claims in one statement. */
export const MAX_CLAIMS_PER_STATEMENT = 256;

/**
 * The statement: $1 purpose, $2 how many, $3..$7 the claims' columns as arrays in call order.
 * Returns the claimed rows with `slot` (1-based call order), the columns `columns` names, and
 * `secret`: expressions over the claimed row `k` that return its sealed secret part.
 */
export function claimBatchStatement(columns: string, poolable: string, secret: string): string {
  const returned = columns
    .split(",")
    .map((c) => `k.${c.trim()}`)
    .join(", ");
  return (
    "WITH picked AS MATERIALIZED (SELECT id, row_number() OVER " +
    '(ORDER BY id COLLATE "POSIX") AS slot FROM (SELECT id FROM key_records ' +
    `WHERE purpose = $1 AND ${poolable} ` +
    'ORDER BY id COLLATE "POSIX" LIMIT $2 FOR UPDATE SKIP LOCKED) oldest), ' +
    "wanted AS (SELECT * FROM unnest($3::text[], $4::text[], $5::text[], " +
    "$6::timestamptz[], $7::timestamptz[]) WITH ORDINALITY " +
    "AS w(requester, subject, request_id, claimed_at, expires_at, slot)) " +
    "UPDATE key_records k SET claim_seq = nextval('key_claim_seq'), " +
    "claim_requester = w.requester, claim_subject = w.subject, " +
    "claim_request_id = w.request_id, claimed_at = w.claimed_at, " +
    "claim_expires_at = w.expires_at " +
    "FROM picked p JOIN wanted w ON w.slot = p.slot WHERE k.id = p.id " +
    `RETURNING p.slot, ${returned}, ${secret}`
  );
}

interface Waiting<Row> {
  values: ClaimValues;
  resolve(row: Row | undefined): void;
  reject(error: unknown): void;
}

/** Gathers one purpose's claims per turn and runs them as one statement. */
export class ClaimBatcher<Row extends { slot: string | number }> {
  readonly #run: (purpose: string, values: unknown[]) => Promise<Row[]>;
  readonly #queues = new Map<string, Waiting<Row>[]>();

  /** `run` executes claimBatchStatement's statement with these values. */
  constructor(run: (purpose: string, values: unknown[]) => Promise<Row[]>) {
    this.#run = run;
  }

  /** Claims one row of `purpose` for `values`; undefined when none was left. */
  claim(purpose: string, values: ClaimValues): Promise<Row | undefined> {
    return new Promise((resolve, reject) => {
      let queue = this.#queues.get(purpose);
      if (!queue) {
        queue = [];
        this.#queues.set(purpose, queue);
        setImmediate(() => this.#flush(purpose));
      }
      queue.push({ values, resolve, reject });
    });
  }

  #flush(purpose: string): void {
    const queue = this.#queues.get(purpose);
    this.#queues.delete(purpose);
    if (!queue) return;
    for (let from = 0; from < queue.length; from += MAX_CLAIMS_PER_STATEMENT) {
      const batch = queue.slice(from, from + MAX_CLAIMS_PER_STATEMENT);
      const column = (i: number) => batch.map((w) => w.values[i]);
      this.#run(purpose, [
        batch.length,
        column(0),
        column(1),
        column(2),
        column(3),
        column(4),
      ]).then(
        (rows) => {
          const bySlot = new Map(rows.map((row) => [Number(row.slot), row]));
          batch.forEach((w, i) => {
            w.resolve(bySlot.get(i + 1));
          });
        },
        (error: unknown) => {
          for (const w of batch) w.reject(error);
        },
      );
    }
  }
}
