/**
 * Parsing of the option values the commands share: data folders, addresses, durations.
 */
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { checkPostgresStoreUrl } from "../store/postgres-url.js";
import { readCaFile } from "../transport/tls.js";

export type Role = "server" | "contributor" | "requester" | "admin";

/** $DKEYGEN_HOME/<role>, else $XDG_DATA_HOME/dkeygen/<role>, else ~/.local/share/dkeygen/<role>. */
export function defaultDataDir(role: Role): string {
  const env = process.env;
  if (env.DKEYGEN_HOME) return join(resolve(env.DKEYGEN_HOME), role);
  const base = env.XDG_DATA_HOME ? resolve(env.XDG_DATA_HOME) : join(homedir(), ".local", "share");
  return join(base, "dkeygen", role);
}

export function dataDirOption(value: string | undefined, role: Role): string {
  return value === undefined ? defaultDataDir(role) : resolve(value);
}

const usage = (message: string) => new DkeygenError(ErrorCodes.USAGE, message);

/** "HOST:PORT", "[v6]:PORT" or ":PORT"; port 0 picks a free one. */
export function parseListen(value: string, option = "--listen"): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw usage(`${option} wants HOST:PORT, got "${value}".`);
  return { host: match[1] ?? (match[2] || "127.0.0.1"), port };
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "250ms", "10s", "5m", "24h", "7d", or a bare number of milliseconds. */
export function parseDuration(value: string, option: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!match) throw usage(`${option} wants a duration like 10s, 5m or 24h; got "${value}".`);
  const ms = Number(match[1]) * UNITS[match[2] ?? "ms"]!;
  if (!Number.isFinite(ms) || ms <= 0) throw usage(`${option} must be positive.`);
  return Math.round(ms);
}

/** `--retain-used`'s default: one day. */
export const RETAIN_USED_DEFAULT = "1d";

/** A retention: a duration (parseDuration), or "forever" (Infinity). */
export function parseRetention(value: string, option: string): number {
  if (value.trim() === "forever") return Number.POSITIVE_INFINITY;
  try {
    return parseDuration(value, option);
  } catch {
    throw usage(`${option} wants a duration like 1h, 1d or 30d, or "forever"; got "${value}".`);
  }
}

export function parsePositiveInt(value: string, option: string, min = 1, max = 1_000_000): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw usage(`${option} wants a whole number from ${min} to ${max}; got "${value}".`);
  }
  return n;
}

/**
 * The key store's URL: `--store URL` (or the flag `option` names), else DKEYGEN_STORE_URL, else
 * undefined (the `key_store` file). A postgres:// URL with a host and a database; anything else
 * is a usage error naming where it came from, whose message never shows the URL's password.
 */
export function storeUrlOption(flag: string | undefined, option = "--store"): string | undefined {
  const env = process.env.DKEYGEN_STORE_URL;
  const [value, source] = flag !== undefined ? [flag, option] : [env, "DKEYGEN_STORE_URL"];
  if (value === undefined || (flag === undefined && value === "")) return undefined;
  let url: string;
  try {
    url = checkPostgresStoreUrl(value);
  } catch (error) {
    throw usage(`${source}: ${(error as Error).message}`);
  }
  if (flag !== undefined && new URL(url).password !== "") {
    process.stderr.write(
      `warning: ${option} carries the database password, which every user of this machine can ` +
        "read in the process list; give the URL in DKEYGEN_STORE_URL instead, or leave the " +
        "password out of it and put it in PGPASSWORD or ~/.pgpass\n",
    );
  }
  return url;
}

/**
 * `--ca FILE` for a client of `url`: its PEM certificates, or undefined without the option. A CA
 * for a plain URL is a usage error: whoever gives one expects TLS and would not get it.
 */
export async function caOption(file: string | undefined, url: string): Promise<string | undefined> {
  if (file === undefined) return undefined;
  if (!/^(wss|https):\/\//i.test(url)) {
    throw usage(`--ca is for a TLS server (wss:// or https://); ${url} is plain.`);
  }
  return readCaFile(file);
}
