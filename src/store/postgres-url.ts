/**
 * The PostgreSQL key store's address: a libpq connection URI (PostgreSQL docs §34.1.1.2,
 * `postgres://user:password@host:port/database?…`), as `--store` or DKEYGEN_STORE_URL give it.
 *
 * The URL may carry the database password, so nothing that reaches a message, an error or a log
 * line shows it as given: `redactStoreUrl` replaces the password (and a `password` query
 * parameter) with `***`. Every message of the PostgreSQL store names the database this way.
 */
import { DkeygenError, ErrorCodes } from "../errors.js";

const SCHEMES = new Set(["postgres:", "postgresql:"]);
const HIDDEN = "***";

/** True when `text` names a PostgreSQL store (a postgres:// or postgresql:// URL). */
export function isPostgresStoreUrl(text: string): boolean {
  return /^postgres(ql)?:\/\//i.test(text);
}

/**
 * `text` with its password hidden; for a text that is not a URL at all, a placeholder (it may be
 * a password pasted in the wrong place, so none of it is repeated).
 */
export function redactStoreUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "<not a URL>";
  }
  if (url.password !== "") url.password = HIDDEN;
  for (const key of [...url.searchParams.keys()]) {
    if (key.toLowerCase() === "password") url.searchParams.set(key, HIDDEN);
  }
  return url.toString();
}

/**
 * Checks a store URL: a postgres:// or postgresql:// URL with a host and a database name. Throws
 * E_INVALID_INPUT (the CLI reports it as a usage error naming its flag) whose message shows the
 * URL without its password. Returns the URL as given (the driver parses it).
 */
export function checkPostgresStoreUrl(text: unknown): string {
  if (typeof text !== "string" || text.length === 0) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, "The store URL must be a non-empty string.");
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Not even a URL: no cause kept, as URL's own error repeats its input.
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      "The store URL is not a URL; give postgres://USER:PASSWORD@HOST:PORT/DATABASE.",
    );
  }
  const shown = redactStoreUrl(text);
  if (!SCHEMES.has(url.protocol)) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `The store URL ${shown} is not a postgres:// or postgresql:// URL.`,
    );
  }
  if (url.hostname === "" && !url.searchParams.has("host")) {
    throw new DkeygenError(ErrorCodes.INVALID_INPUT, `The store URL ${shown} names no host.`);
  }
  let database: string;
  try {
    database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  } catch {
    database = "";
  }
  if (database === "" || database.includes("/")) {
    throw new DkeygenError(
      ErrorCodes.INVALID_INPUT,
      `The store URL ${shown} names no database (postgres://…/DATABASE).`,
    );
  }
  return text;
}
