/**
 * The PostgreSQL key store's schema, as versioned migrations, and the code that applies them.
 * docs/PROTOCOL.md §10.1 describes the result for another implementation.
 *
 * The SQL lives here as strings, one entry per version (tsc copies no .sql file into dist/). A
 * migration is never edited once released: a change is a new version. `applyMigrations` runs the
 * missing ones in order, each in its own transaction together with its `schema_migrations` row,
 * under a session advisory lock (PostgreSQL docs §13.3.5), so two processes that open one
 * database at once apply each version exactly once: the second waits, then finds nothing to do.
 *
 * The rules live in the schema, not only in code: CHECK constraints (a subject or holders need an
 * owner; a claim is whole or absent; an owned record is never claimed; a step is a safe integer;
 * a record has its own sealed secret or a part of its round's, never both), unique keys (one
 * opening and one round secret per round; a log index once), foreign keys (the log's indexes are
 * dense; a record's round part needs its round's secret), and triggers that refuse what no
 * statement of the store ever does (rewriting a record's fields, a second claim or consumption, a
 * step that does not increase, deleting a record other than a consumed or expired pool OTP,
 * changing a round secret, changing or deleting a log entry, an opening or the key check).
 */
import type pg from "pg";
import { DkeygenError, ErrorCodes } from "../errors.js";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Names are stored as the text between the quotes of their JSON string (ECMAScript
 * `JSON.stringify`: `"` and `\` escaped, U+0000–U+001F and lone surrogates as escapes): PostgreSQL
 * text holds no NUL, and every name the other stores keep must round-trip. So a name is never
 * empty, and 1024 UTF-16 units become at most 6144 characters.
 */
const NAME = "text NOT NULL CHECK (char_length(%) BETWEEN 1 AND 6144)";
const OPTIONAL_NAME = "text CHECK (char_length(%) BETWEEN 1 AND 6144)";
const name = (column: string, optional = false) =>
  `${column} ${(optional ? OPTIONAL_NAME : NAME).replace("%", column)}`;

const V1 = `
CREATE FUNCTION dkeygen_names_ok(names text[], most integer) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT cardinality(names) <= most
     AND array_position(names, NULL) IS NULL
     AND NOT EXISTS (SELECT 1 FROM unnest(names) AS n WHERE char_length(n) NOT BETWEEN 1 AND 6144)
$$;

CREATE FUNCTION dkeygen_distinct(names text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT count(DISTINCT n) = count(*) FROM unnest(names) AS n
$$;

CREATE TABLE key_records (
  id text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-7][0-9A-HJKMNP-TV-Z]{25}$'),
  ${name("purpose")},
  created_at timestamptz NOT NULL,
  ${name("round_id")},
  participants text[] NOT NULL CHECK (dkeygen_names_ok(participants, 100000)),
  ${name("algorithm")},
  public text NOT NULL CHECK (public LIKE '{%}'),
  ${name("owner", true)},
  ${name("subject", true)},
  holders text[] CHECK (cardinality(holders) BETWEEN 1 AND 64 AND dkeygen_names_ok(holders, 64)
                        AND dkeygen_distinct(holders)),
  secret_iv bytea NOT NULL CHECK (octet_length(secret_iv) = 12),
  secret_ct bytea NOT NULL CHECK (octet_length(secret_ct) <= 1048576),
  secret_tag bytea NOT NULL CHECK (octet_length(secret_tag) = 16),
  claim_seq bigint UNIQUE,
  ${name("claim_requester", true)},
  ${name("claim_subject", true)},
  ${name("claim_request_id", true)},
  claimed_at timestamptz,
  claim_expires_at timestamptz,
  consumed_at timestamptz,
  last_step bigint CHECK (last_step BETWEEN 0 AND 9007199254740991),
  last_step_at timestamptz,
  CONSTRAINT key_records_subject_needs_owner CHECK (subject IS NULL OR owner IS NOT NULL),
  CONSTRAINT key_records_holders_need_owner CHECK (holders IS NULL OR owner IS NOT NULL),
  CONSTRAINT key_records_claim_whole CHECK (
    num_nulls(claim_seq, claim_requester, claim_subject, claim_request_id, claimed_at,
              claim_expires_at) IN (0, 6)),
  CONSTRAINT key_records_owned_never_claimed CHECK (owner IS NULL OR claim_seq IS NULL),
  CONSTRAINT key_records_step_whole CHECK ((last_step IS NULL) = (last_step_at IS NULL))
);

-- Claim order, for ListQuery.latestClaims (claimedAt is the caller's and need not increase).
CREATE SEQUENCE key_claim_seq AS bigint;

-- The pool claimNext takes from, oldest id first.
CREATE INDEX key_records_pool ON key_records (purpose, id)
  WHERE owner IS NULL AND claim_seq IS NULL AND consumed_at IS NULL;
CREATE INDEX key_records_purpose ON key_records (purpose, id);
CREATE INDEX key_records_owner ON key_records (owner, id) WHERE owner IS NOT NULL;
CREATE INDEX key_records_subject ON key_records (subject, id) WHERE subject IS NOT NULL;
CREATE INDEX key_records_claim_subject ON key_records (claim_subject, id)
  WHERE claim_subject IS NOT NULL;
CREATE INDEX key_records_claimant ON key_records (claim_requester, claim_subject, claim_seq)
  WHERE claim_seq IS NOT NULL;

CREATE FUNCTION key_records_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.id, NEW.purpose, NEW.created_at, NEW.round_id, NEW.participants, NEW.algorithm,
      NEW.public, NEW.owner, NEW.subject, NEW.holders, NEW.secret_iv, NEW.secret_ct,
      NEW.secret_tag)
     IS DISTINCT FROM
     (OLD.id, OLD.purpose, OLD.created_at, OLD.round_id, OLD.participants, OLD.algorithm,
      OLD.public, OLD.owner, OLD.subject, OLD.holders, OLD.secret_iv, OLD.secret_ct,
      OLD.secret_tag) THEN
    RAISE EXCEPTION 'key record % is never rewritten', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.claim_seq IS NOT NULL AND
     (NEW.claim_seq, NEW.claim_requester, NEW.claim_subject, NEW.claim_request_id,
      NEW.claimed_at, NEW.claim_expires_at)
     IS DISTINCT FROM
     (OLD.claim_seq, OLD.claim_requester, OLD.claim_subject, OLD.claim_request_id,
      OLD.claimed_at, OLD.claim_expires_at) THEN
    RAISE EXCEPTION 'key record % is claimed at most once', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.consumed_at IS NOT NULL AND NEW.consumed_at IS DISTINCT FROM OLD.consumed_at THEN
    RAISE EXCEPTION 'key record % is consumed at most once', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.last_step IS DISTINCT FROM OLD.last_step
     AND (NEW.last_step IS NULL OR NEW.last_step <= OLD.last_step) THEN
    RAISE EXCEPTION 'the step of key record % only increases', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.last_step IS NOT DISTINCT FROM OLD.last_step
     AND NEW.last_step_at IS DISTINCT FROM OLD.last_step_at THEN
    RAISE EXCEPTION 'the step time of key record % changes only with its step', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER key_records_guard BEFORE UPDATE ON key_records
  FOR EACH ROW EXECUTE FUNCTION key_records_guard();

CREATE FUNCTION dkeygen_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are never changed or removed', TG_TABLE_NAME
    USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER key_records_kept BEFORE DELETE ON key_records
  FOR EACH ROW EXECUTE FUNCTION dkeygen_refuse_change();

CREATE TABLE round_openings (
  ${name("round_id")} PRIMARY KEY,
  iv bytea NOT NULL CHECK (octet_length(iv) = 12),
  ct bytea NOT NULL CHECK (octet_length(ct) BETWEEN 1 AND 2097152),
  tag bytea NOT NULL CHECK (octet_length(tag) = 16),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER round_openings_kept BEFORE UPDATE OR DELETE ON round_openings
  FOR EACH ROW EXECUTE FUNCTION dkeygen_refuse_change();

-- The transparency log: entry idx exists only once entry idx - 1 does (dense, from 0).
CREATE TABLE log_entries (
  idx bigint PRIMARY KEY CHECK (idx >= 0),
  prev bigint UNIQUE REFERENCES log_entries (idx),
  leaf bytea NOT NULL CHECK (octet_length(leaf) BETWEEN 1 AND 1048576),
  CONSTRAINT log_entries_dense CHECK ((idx = 0 AND prev IS NULL) OR prev = idx - 1)
);
CREATE TRIGGER log_entries_kept BEFORE UPDATE OR DELETE ON log_entries
  FOR EACH ROW EXECUTE FUNCTION dkeygen_refuse_change();

-- Which store key seals this database's secrets: HKDF(storeKey, info =
-- "dkeygen/v1/store/postgres-key-check"), so a wrong store.key is refused at open.
CREATE TABLE store_key_check (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  check_value bytea NOT NULL CHECK (octet_length(check_value) = 32)
);
CREATE TRIGGER store_key_check_kept BEFORE UPDATE OR DELETE ON store_key_check
  FOR EACH ROW EXECUTE FUNCTION dkeygen_refuse_change();
`;

/**
 * Version 2: the distribution servers' verification attempts (failure counts, attempts in
 * progress, lockouts) per lock key, shared by every distribution server on the database
 * (src/server/distribution/verification/postgres-attempt-store.ts). The key is stored as
 * SHA-256 of the lock key (kind, requester id, subject): fixed size, and no subject in the clear.
 */
const V2 = `
CREATE TABLE verification_attempts (
  key_hash bytea PRIMARY KEY CHECK (octet_length(key_hash) = 32),
  failures integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
  pending integer NOT NULL DEFAULT 0 CHECK (pending >= 0),
  locked_until bigint NOT NULL DEFAULT 0 CHECK (locked_until >= 0),
  touched bigint NOT NULL CHECK (touched >= 0)
);
CREATE INDEX verification_attempts_idle ON verification_attempts (touched)
  WHERE pending = 0;
`;

/**
 * Version 3: requester registrations and their tombstones (src/server/postgres-requester-store.ts),
 * so that every distribution server on the database authenticates the same requesters, and a
 * removal reaches all of them. `requester_changes.version` is raised in the transaction of every
 * add, replace and removal: servers poll that one row to notice a change, and its row lock
 * serializes the changes. A removed registration is a tombstone (removed_at set): never changed
 * again, never deleted, its id never reused; one live registration per name. The response key is
 * sealed under the store key (AES-256-GCM, AAD LP("dkeygen/v1/store/requester-response-key", id)).
 */
const V3 = `
CREATE TABLE requesters (
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  id text COLLATE "C" PRIMARY KEY CHECK (id ~ '^rq:[A-Za-z0-9_-]{22}$'),
  name text COLLATE "C" NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
  public_key text NOT NULL
    CHECK (public_key LIKE '-----BEGIN PUBLIC KEY-----%' AND octet_length(public_key) <= 16384),
  fingerprint text NOT NULL CHECK (char_length(fingerprint) BETWEEN 1 AND 256),
  credential_hash bytea NOT NULL CHECK (octet_length(credential_hash) = 32),
  response_key_iv bytea NOT NULL CHECK (octet_length(response_key_iv) = 12),
  response_key_ct bytea NOT NULL CHECK (octet_length(response_key_ct) = 32),
  response_key_tag bytea NOT NULL CHECK (octet_length(response_key_tag) = 16),
  added_at timestamptz NOT NULL,
  removed_at timestamptz
);
CREATE UNIQUE INDEX requesters_live_name ON requesters (name) WHERE removed_at IS NULL;
CREATE INDEX requesters_name ON requesters (name, seq);

CREATE FUNCTION requesters_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.removed_at IS NOT NULL THEN
    RAISE EXCEPTION 'requester % was removed; a tombstone never changes', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF (NEW.seq, NEW.id, NEW.name) IS DISTINCT FROM (OLD.seq, OLD.id, OLD.name) THEN
    RAISE EXCEPTION 'the id and name of requester % never change', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER requesters_guard BEFORE UPDATE ON requesters
  FOR EACH ROW EXECUTE FUNCTION requesters_guard();
CREATE TRIGGER requesters_kept BEFORE DELETE ON requesters
  FOR EACH ROW EXECUTE FUNCTION dkeygen_refuse_change();

CREATE TABLE requester_changes (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  version bigint NOT NULL CHECK (version >= 0)
);
INSERT INTO requester_changes (version) VALUES (0);
CREATE FUNCTION requester_changes_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.version <= OLD.version THEN
    RAISE EXCEPTION 'the requesters version only increases' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER requester_changes_guard BEFORE UPDATE ON requester_changes
  FOR EACH ROW EXECUTE FUNCTION requester_changes_guard();
CREATE TRIGGER requester_changes_kept BEFORE DELETE ON requester_changes
  FOR EACH ROW EXECUTE FUNCTION dkeygen_refuse_change();
`;

/**
 * Version 4: held records (KeyStore RecordInput.held). A pool refill's records are put held and
 * released together once its round's log entry is witnessed (docs/PROTOCOL.md §15.5), so no
 * process claiming from this database takes one earlier. Rows from before are not held (the
 * default); the pool index leaves held rows out, a partial index finds a round's held rows, and a
 * trigger lets `held` change only from true to false (a released record is never held again).
 */
const V4 = `
ALTER TABLE key_records ADD COLUMN held boolean NOT NULL DEFAULT false;
ALTER TABLE key_records ADD CONSTRAINT key_records_held_unowned CHECK (NOT held OR owner IS NULL);

DROP INDEX key_records_pool;
CREATE INDEX key_records_pool ON key_records (purpose, id)
  WHERE owner IS NULL AND claim_seq IS NULL AND consumed_at IS NULL AND NOT held;
CREATE INDEX key_records_held ON key_records (round_id) WHERE held;

CREATE FUNCTION key_records_held_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.held AND NOT OLD.held THEN
    RAISE EXCEPTION 'key record % is never held again once released', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER key_records_held_guard BEFORE UPDATE ON key_records
  FOR EACH ROW EXECUTE FUNCTION key_records_held_guard();
`;

/**
 * Version 5: request windows shared by every distribution server on the database (the
 * per-credential rate limit and the per-requester OTP quota): fixed windows on the database's
 * clock, handed out to processes in chunks by one function, so the sum over all processes never
 * exceeds the limit (docs/PROTOCOL.md §10.1, §12.2).
 */
const V5 = `
CREATE TABLE request_windows (
  name text COLLATE "C" NOT NULL CHECK (name IN ('credential', 'otp')),
  key text COLLATE "C" NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 256),
  window_start timestamptz NOT NULL,
  used integer NOT NULL CHECK (used >= 0),
  PRIMARY KEY (name, key)
);
CREATE FUNCTION dkeygen_take_requests(
  p_name text, p_key text, p_window_ms integer, p_want integer, p_max integer,
  OUT granted integer, OUT remaining_ms integer
) LANGUAGE plpgsql AS $$
DECLARE
  now_ms numeric := floor(extract(epoch FROM clock_timestamp()) * 1000);
  start_ms numeric := now_ms - mod(now_ms, p_window_ms);
  w timestamptz := to_timestamp(start_ms / 1000);
  used_now integer;
BEGIN
  IF p_window_ms < 1 OR p_want < 1 OR p_max < 1 THEN
    RAISE EXCEPTION 'dkeygen_take_requests: window, want and max must be positive'
      USING ERRCODE = '22023';
  END IF;
  INSERT INTO request_windows (name, key, window_start, used) VALUES (p_name, p_key, w, 0)
    ON CONFLICT (name, key) DO NOTHING;
  SELECT CASE WHEN r.window_start = w THEN r.used ELSE 0 END INTO used_now
    FROM request_windows r WHERE r.name = p_name AND r.key = p_key FOR UPDATE;
  granted := GREATEST(0, LEAST(p_want, p_max - used_now));
  UPDATE request_windows r SET window_start = w, used = used_now + granted
    WHERE r.name = p_name AND r.key = p_key;
  remaining_ms := (start_ms + p_window_ms - now_ms)::integer;
END
$$;
`;

/**
 * Version 6: the pool index orders ids under collation "POSIX" (the same byte order as the
 * column's "C"), and the claim orders by `id COLLATE "POSIX"`, so only this index can give the
 * claim its order. Under statistics taken while most rows were poolable, the planner preferred
 * the primary key with a filter, and every claim then stepped over every record claimed before
 * it (cost growing with the store's history, not its pool).
 */
const V6 = `
CREATE INDEX key_records_pool_order ON key_records (purpose, id COLLATE "POSIX")
  WHERE owner IS NULL AND claim_seq IS NULL AND consumed_at IS NULL AND NOT held;
DROP INDEX key_records_pool;
`;

/**
 * Version 7: retention (issue 17). The BEFORE DELETE trigger of version 1 refused every delete; it
 * now lets through exactly the rows a retention sweep removes — a pool OTP (purpose "otp", no
 * owner, not held) that is consumed or whose claim has expired by the database's clock — and
 * refuses every other delete as before. Which of those are old enough is the store's choice
 * (`retainUsedMs`); the trigger only keeps anything else, and any live OTP, out of reach. A
 * partial index on the time each such row died finds them oldest first without a scan, and
 * key_records is vacuumed once 1 % of its rows are dead rather than 20 % (the default),
 * and its indexes cleaned every time (docs/ARCHITECTURE.md §4 "Retention and vacuum"). The index
 * is built in the migration's transaction: writes wait while it is built.
 */
const V7 = `
CREATE FUNCTION key_records_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.purpose = 'otp' AND OLD.owner IS NULL AND NOT OLD.held
     AND (OLD.consumed_at IS NOT NULL OR OLD.claim_expires_at < now()) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'key record % is kept: only a consumed or expired pool OTP is ever removed',
    OLD.id USING ERRCODE = 'check_violation';
END
$$;
DROP TRIGGER key_records_kept ON key_records;
CREATE TRIGGER key_records_kept BEFORE DELETE ON key_records
  FOR EACH ROW EXECUTE FUNCTION key_records_delete_guard();

CREATE INDEX key_records_otp_dead ON key_records ((coalesce(consumed_at, claim_expires_at)))
  WHERE purpose = 'otp' AND owner IS NULL AND NOT held
    AND (consumed_at IS NOT NULL OR claim_seq IS NOT NULL);

-- A claim walks the pool index from its start over the entries of rows claimed since the last
-- vacuum: vacuum after 1 % of the rows died, not the default 20 %, and always clean the indexes
-- (by default a vacuum finding dead rows on under 2 % of the pages leaves the indexes alone).
ALTER TABLE key_records SET (autovacuum_vacuum_scale_factor = 0.01, vacuum_index_cleanup = on);
`;

/**
 * Version 8: an account's TOTP or HOTP enrollment is looked up by owner and subject (issue 12
 * §6). The subject index of version 1 held the records made for a subject by every owner; this
 * one, on (subject, owner, id), finds one owner's records for a subject in id order and still
 * serves a lookup by subject alone. A lookup naming an owner reads no claim column (an owned row
 * is never claimed: key_records_owned_never_claimed), so no other requester's claims for the
 * subject are read. It holds owned rows only (a subject needs an owner): pool OTPs are not in it.
 */
const V8 = `
CREATE INDEX key_records_subject_owner ON key_records (subject, owner, id)
  WHERE subject IS NOT NULL;
DROP INDEX key_records_subject;
`;

/**
 * Version 9: round secrets (KeyStore putRoundSecret). A batch round keeps one sealed secret per
 * round in `round_secrets`, and each of its records only the number of its part
 * (`key_records.round_part`) instead of a sealed secret of its own: a row has either all three
 * secret columns or a round part, never both, never neither. Every row written before has its own
 * secret (the three columns were NOT NULL): the new columns are NULL there, and the CHECKs hold.
 *
 * A round-part row refers to its round's secret by a foreign key. `round_secret_id` is the row's
 * `round_id` when it has a round part and NULL otherwise (a CHECK ties it to both), so a row
 * with its own secret refers to nothing (a foreign key with a NULL column is not checked) and a
 * put of a round-part row is refused, in its own INSERT, when the round has no secret (SQLSTATE
 * 23503). A plain column rather than a generated one: adding a stored generated column rewrites
 * the table, adding a nullable column does not. Its partial index makes the key's check on a
 * delete from round_secrets one index probe. The new CHECKs are added in one ALTER TABLE (one
 * scan of key_records to validate them), the index is built before the key is added (so its
 * validation reads the index, not the table); all in the migration's transaction: writes wait.
 *
 * round_secrets rows are never updated (trigger). A delete is refused by the foreign key while
 * any record refers to the secret; which unreferenced secrets go is the store's choice (the
 * retention sweep deletes a round's secret in the statement that deletes the round's last
 * record, never one whose round has had no record deleted: postgres.ts SWEEP_BATCH). The update
 * guard of version 1 is replaced by one that also refuses changing `round_part` and
 * `round_secret_id`.
 */
const V9 = `
CREATE TABLE round_secrets (
  ${name("round_id")} PRIMARY KEY,
  iv bytea NOT NULL CHECK (octet_length(iv) = 12),
  ct bytea NOT NULL CHECK (octet_length(ct) BETWEEN 1 AND 65536),
  tag bytea NOT NULL CHECK (octet_length(tag) = 16),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER round_secrets_kept BEFORE UPDATE ON round_secrets
  FOR EACH ROW EXECUTE FUNCTION dkeygen_refuse_change();

ALTER TABLE key_records
  ADD COLUMN round_part bigint CHECK (round_part BETWEEN 0 AND 4294967295),
  ADD COLUMN round_secret_id text,
  ALTER COLUMN secret_iv DROP NOT NULL,
  ALTER COLUMN secret_ct DROP NOT NULL,
  ALTER COLUMN secret_tag DROP NOT NULL,
  ADD CONSTRAINT key_records_secret_or_part CHECK (
    (round_part IS NULL AND num_nulls(secret_iv, secret_ct, secret_tag) = 0) OR
    (round_part IS NOT NULL AND num_nonnulls(secret_iv, secret_ct, secret_tag) = 0)),
  ADD CONSTRAINT key_records_round_secret_id_of_part CHECK (
    round_secret_id IS NOT DISTINCT FROM CASE WHEN round_part IS NOT NULL THEN round_id END);

CREATE INDEX key_records_round_secret_id ON key_records (round_secret_id)
  WHERE round_secret_id IS NOT NULL;
ALTER TABLE key_records ADD CONSTRAINT key_records_round_secret
  FOREIGN KEY (round_secret_id) REFERENCES round_secrets (round_id);

CREATE OR REPLACE FUNCTION key_records_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (NEW.id, NEW.purpose, NEW.created_at, NEW.round_id, NEW.participants, NEW.algorithm,
      NEW.public, NEW.owner, NEW.subject, NEW.holders, NEW.secret_iv, NEW.secret_ct,
      NEW.secret_tag, NEW.round_part, NEW.round_secret_id)
     IS DISTINCT FROM
     (OLD.id, OLD.purpose, OLD.created_at, OLD.round_id, OLD.participants, OLD.algorithm,
      OLD.public, OLD.owner, OLD.subject, OLD.holders, OLD.secret_iv, OLD.secret_ct,
      OLD.secret_tag, OLD.round_part, OLD.round_secret_id) THEN
    RAISE EXCEPTION 'key record % is never rewritten', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.claim_seq IS NOT NULL AND
     (NEW.claim_seq, NEW.claim_requester, NEW.claim_subject, NEW.claim_request_id,
      NEW.claimed_at, NEW.claim_expires_at)
     IS DISTINCT FROM
     (OLD.claim_seq, OLD.claim_requester, OLD.claim_subject, OLD.claim_request_id,
      OLD.claimed_at, OLD.claim_expires_at) THEN
    RAISE EXCEPTION 'key record % is claimed at most once', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.consumed_at IS NOT NULL AND NEW.consumed_at IS DISTINCT FROM OLD.consumed_at THEN
    RAISE EXCEPTION 'key record % is consumed at most once', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.last_step IS DISTINCT FROM OLD.last_step
     AND (NEW.last_step IS NULL OR NEW.last_step <= OLD.last_step) THEN
    RAISE EXCEPTION 'the step of key record % only increases', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.last_step IS NOT DISTINCT FROM OLD.last_step
     AND NEW.last_step_at IS DISTINCT FROM OLD.last_step_at THEN
    RAISE EXCEPTION 'the step time of key record % changes only with its step', OLD.id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
`;

/**
 * Version 10: withdrawn OTPs may be removed (issue 17). A pool refill's records are put held and
 * released once the round's entry is witnessed; a round not witnessed in time (or stored but
 * never logged) has its records consumed while still held, "withdrawn": never handed out, and
 * kept by versions 7 to 9 for good, since the delete guard and the death index left every held
 * row out. The guard now lets a held row go once it is consumed (a held row is never claimed, so
 * it dies at its consumption); an unconsumed held row is kept as before. The death index is
 * rebuilt without `NOT held` (in the migration's transaction: writes wait while it is built),
 * and the sweep's statement (postgres.ts SWEEP_BATCH) matches its predicate.
 */
const V10 = `
CREATE OR REPLACE FUNCTION key_records_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.purpose = 'otp' AND OLD.owner IS NULL
     AND (OLD.consumed_at IS NOT NULL OR (NOT OLD.held AND OLD.claim_expires_at < now())) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'key record % is kept: only a consumed or expired pool OTP is ever removed',
    OLD.id USING ERRCODE = 'check_violation';
END
$$;

DROP INDEX key_records_otp_dead;
CREATE INDEX key_records_otp_dead ON key_records ((coalesce(consumed_at, claim_expires_at)))
  WHERE purpose = 'otp' AND owner IS NULL AND (consumed_at IS NOT NULL OR claim_seq IS NOT NULL);
`;

/** Every version, in order. Released entries are never edited. */
export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "key records, round openings, log entries, key check", sql: V1 },
  { version: 2, name: "verification attempts shared by distribution servers", sql: V2 },
  { version: 3, name: "requester registrations and tombstones", sql: V3 },
  { version: 4, name: "held records, released together per round", sql: V4 },
  { version: 5, name: "request windows shared by distribution servers", sql: V5 },
  { version: 6, name: "the pool index alone orders claims", sql: V6 },
  { version: 7, name: "retention: consumed and expired OTPs may be removed", sql: V7 },
  { version: 8, name: "an owner's records for a subject, by their own index", sql: V8 },
  { version: 9, name: "round secrets shared by a round's records", sql: V9 },
  { version: 10, name: "retention: withdrawn OTPs may be removed", sql: V10 },
];

/** The schema version this code reads and writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * The advisory lock key migrations are applied under: the first 8 bytes of
 * SHA-256("dkeygen/v1/store/migrations") as a signed 64-bit integer.
 */
export const MIGRATION_LOCK_KEY = "-3757755222266883795";

const MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS schema_migrations (
  version integer PRIMARY KEY CHECK (version > 0),
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`;

/**
 * Applies the migrations `client`'s database lacks, under the migration lock; returns those it
 * applied (none when the schema is current). Refuses (E_OPERATIONAL) a database whose schema is
 * newer than this code, and changes nothing then. `client` must not be in a transaction.
 */
export async function applyMigrations(
  client: pg.ClientBase,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<Migration[]> {
  await client.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
  try {
    await client.query(MIGRATIONS_TABLE);
    const { rows } = await client.query<{ version: number }>(
      "SELECT version FROM schema_migrations ORDER BY version",
    );
    const applied = new Set(rows.map((row) => row.version));
    const newest = rows.length === 0 ? 0 : rows[rows.length - 1]!.version;
    const known = migrations.length === 0 ? 0 : migrations[migrations.length - 1]!.version;
    if (newest > known) {
      throw new DkeygenError(
        ErrorCodes.OPERATIONAL,
        `The database's key store schema is version ${newest}, newer than this dkeygen knows ` +
          `(${known}); run the dkeygen that migrated it, or a newer one.`,
      );
    }
    const done: Migration[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await client.query("BEGIN");
      try {
        await client.query(migration.sql);
        await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
          migration.version,
          migration.name,
        ]);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      }
      done.push(migration);
    }
    return done;
  } finally {
    await client.query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK_KEY]);
  }
}
