/**
 * The purpose options shared by `generate` and `derive`: a flag for each option any purpose takes
 * (each purpose refuses the ones it does not know), plus `--param key=value` for the rest. Values
 * stay strings; the derivations parse them (src/derive/params.ts), so `--passphrase 0123` stays
 * "0123". The wallet passphrase, a secret, is never taken on the command line: it comes from
 * DKEYGEN_WALLET_PASSPHRASE or a file.
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { derivationOf } from "../derive/index.js";
import type { Derivation } from "../derive/types.js";
import { DkeygenError, ErrorCodes, isDkeygenError } from "../errors.js";
import { onUserPath } from "./file-errors.js";

const FLAGS = [
  ["digits", "--digits <n>", "otp: 6-10; hotp/totp: 6 or 8"],
  ["algorithm", "--algorithm <name>", "hotp/totp: SHA1, SHA256 or SHA512"],
  ["period", "--period <seconds>", "totp: time step (default 30)"],
  ["counter", "--counter <n>", "hotp: initial counter (default 0)"],
  ["issuer", "--issuer <name>", "hotp/totp: issuer shown by authenticator apps"],
  ["account", "--account <name>", "hotp/totp: account shown by authenticator apps"],
  ["bits", "--bits <n>", "rsa: 2048, 3072 or 4096 (default 3072)"],
  ["curve", "--curve <name>", "ecc: secp256k1, p256 or ed25519; nonce: secp256k1 or p256"],
  ["words", "--words <n>", "wallet: 12, 15, 18, 21 or 24 (default 24)"],
  ["accounts", "--accounts <n>", "wallet: how many accounts (default 1)"],
  ["indexes", "--indexes <n>", "wallet: addresses per account (default 1)"],
  ["m", "--m <n>", "multisig: signatures required (default 2)"],
  ["n", "--n <n>", "multisig: keys (default 3)"],
] as const;

export function withPurposeOptions(command: Command): Command {
  for (const [, flag, help] of FLAGS) command.option(flag, help);
  return command
    .option(
      "--passphrase-file <file>",
      "wallet: BIP39 passphrase from a file (or DKEYGEN_WALLET_PASSPHRASE)",
    )
    .option(
      "--param <key=value>",
      "any purpose option by name (repeatable)",
      (v: string, acc: string[]) => [...acc, v],
      [],
    );
}

/** Collects the purpose options given on the command line into raw params. */
export async function purposeParams(
  flags: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const params: Record<string, unknown> = {};
  for (const pair of (flags.param as string[] | undefined) ?? []) {
    const eq = pair.indexOf("=");
    if (eq <= 0)
      throw new DkeygenError(ErrorCodes.USAGE, `--param wants key=value, got "${pair}".`);
    params[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  for (const [name] of FLAGS) {
    if (flags[name] !== undefined) params[name] = flags[name];
  }
  if (params.passphrase !== undefined) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "A passphrase on the command line would be seen by other users; use --passphrase-file or DKEYGEN_WALLET_PASSPHRASE.",
    );
  }
  if (typeof flags.passphraseFile === "string") {
    const file = flags.passphraseFile;
    const text = await onUserPath("--passphrase-file", file, "read", () => readFile(file, "utf8"));
    params.passphrase = text.replace(/\r?\n$/, "");
  } else if (process.env.DKEYGEN_WALLET_PASSPHRASE) {
    params.passphrase = process.env.DKEYGEN_WALLET_PASSPHRASE;
  }
  return params;
}

/**
 * The derivation of `purpose` and the purpose options checked against it, before anything else
 * happens. What the derivation refuses came from this command line, so it is a usage error (exit
 * status 2), and the sentence names the flag (`--bits`) rather than the option ("bits").
 */
export function checkPurpose(
  purpose: string,
  params: Record<string, unknown>,
): { derivation: Derivation<unknown>; parsed: unknown } {
  try {
    const derivation = derivationOf(purpose);
    return { derivation, parsed: derivation.parseParams(params) };
  } catch (error) {
    if (!isDkeygenError(error, ErrorCodes.INVALID_INPUT)) throw error;
    const flags = new Set<string>(FLAGS.map(([name]) => name));
    const message = error.message.replace(/option "([A-Za-z]+)"/g, (_all, name: string) =>
      flags.has(name) ? `--${name}` : `--param ${name}`,
    );
    throw new DkeygenError(ErrorCodes.USAGE, message, { cause: error });
  }
}
