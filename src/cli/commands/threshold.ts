/**
 * `dkeygen threshold keygen`: a distributed key generation among n connected contributors, the
 * server only coordinating (docs/PROTOCOL.md §16). Prints the key's public description; the
 * shares stay with the contributors (`dkeygen contributor shares`). `threshold sign`, `refresh`
 * and `recover` (a holder that lost its share file rebuilds it, §16.8) work on such a key.
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { MAX_SIGN_MESSAGE_BYTES } from "../../protocol/threshold-messages.js";
import { REQUESTER_NAME } from "../../server/requesters.js";
import { checkThreshold, isSuiteName, SUITE_NAMES } from "../../threshold/suites.js";
import { onUserPath } from "../file-errors.js";
import { printJson, printTable } from "../output.js";
import { type AdminFlags, checkAdminFlags, connectAdmin, withAdminOptions } from "./generate.js";

interface KeygenFlags extends AdminFlags {
  suite: string;
  t: string;
  n: string;
  for?: string;
  json?: boolean;
}

function integerFlag(name: string, value: string): number {
  if (!/^[0-9]{1,3}$/.test(value)) {
    throw new DkeygenError(ErrorCodes.USAGE, `${name} wants a whole number; got "${value}".`);
  }
  return Number(value);
}

interface SignFlags extends AdminFlags {
  key: string;
  messageFile: string;
  json?: boolean;
}

export function registerThreshold(program: Command): void {
  const threshold = program
    .command("threshold")
    .description("threshold keys: made by a distributed key generation, held only as shares");
  registerKeygen(threshold);
  registerSign(threshold);
  registerRefresh(threshold);
  registerRecover(threshold);
}

function registerRecover(threshold: Command): void {
  withAdminOptions(
    threshold
      .command("recover")
      .description(
        "send a threshold key's recovery data to its connected holders: one that lost its share file rebuilds it with its identity key",
      )
      .requiredOption("--key <id>", "the threshold key's id"),
  )
    .option("--json", "print each holder's outcome as JSON")
    .action(async (flags: AdminFlags & { key: string; json?: boolean }) => {
      checkKeyFlags(flags);
      const admin = await connectAdmin(flags);
      try {
        const holders = await admin.thresholdRecover(flags.key);
        if (flags.json) {
          printJson({ keyId: flags.key, holders });
          return;
        }
        printTable(
          holders.map((h) => [
            `${h.index} ${h.contributorId}`,
            h.reason === undefined ? h.outcome : `${h.outcome} (${h.reason})`,
          ]),
        );
      } finally {
        admin.close();
      }
    });
}

function registerRefresh(threshold: Command): void {
  withAdminOptions(
    threshold
      .command("refresh")
      .description(
        "give a threshold key's holders new shares of the same key (all n online); old shares become useless",
      )
      .requiredOption("--key <id>", "the threshold key's id"),
  )
    .option("--json", "print the refreshed key as JSON")
    .action(async (flags: AdminFlags & { key: string; json?: boolean }) => {
      checkKeyFlags(flags);
      const admin = await connectAdmin(flags);
      try {
        const key = await admin.thresholdRefresh(flags.key);
        if (flags.json) {
          printJson(key);
          return;
        }
        printTable([
          ["key", `${key.id} (sign with this id from now on)`],
          ["refreshed", key.refreshOf ?? flags.key],
          ["group public key", `${key.groupPublicKey} (unchanged)`],
          ...(key.address === undefined
            ? []
            : ([["address (P2TR)", key.address]] as [string, string][])),
          ["holders", key.holders.join("\n")],
        ]);
      } finally {
        admin.close();
      }
    });
}

function registerSign(threshold: Command): void {
  withAdminOptions(
    threshold
      .command("sign")
      .description("sign a file's bytes with a threshold key: t of its holders sign (FROST)")
      .requiredOption("--key <id>", "the threshold key's id (from threshold keygen)")
      .requiredOption(
        "--message-file <file>",
        `the message to sign, up to ${MAX_SIGN_MESSAGE_BYTES} bytes (e.g. a transaction's sighash)`,
      ),
  )
    .option("--json", "print {keyId, signature, signers} as JSON")
    .action(async (flags: SignFlags) => {
      checkKeyFlags(flags);
      const message = await onUserPath("--message-file", flags.messageFile, "read", () =>
        readFile(flags.messageFile),
      );
      if (message.length > MAX_SIGN_MESSAGE_BYTES) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          `--message-file is ${message.length} bytes; at most ${MAX_SIGN_MESSAGE_BYTES} are signed (sign a hash of a longer message).`,
        );
      }
      const admin = await connectAdmin(flags);
      try {
        const result = await admin.thresholdSign(flags.key, new Uint8Array(message));
        if (flags.json) {
          printJson(result);
          return;
        }
        printTable([
          ["key", result.keyId],
          ["signature", result.signature],
          ["signers", result.signers.join("\n")],
        ]);
      } finally {
        admin.close();
      }
    });
}

function registerKeygen(threshold: Command): void {
  withAdminOptions(
    threshold
      .command("keygen")
      .description(
        "run a distributed key generation among n connected contributors; no machine ever holds the key",
      )
      .requiredOption("--suite <suite>", `the FROST suite: ${SUITE_NAMES.join(", ")}`)
      .requiredOption("--t <t>", "how many holders must sign together (the threshold)")
      .requiredOption("--n <n>", "how many contributors hold a share"),
  )
    .option("--for <requester>", "the requesting client that owns the key")
    .option("--json", "print the key as JSON")
    .action(async (flags: KeygenFlags) => {
      if (!isSuiteName(flags.suite)) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          `--suite wants one of ${SUITE_NAMES.join(", ")}; got "${flags.suite}".`,
        );
      }
      const t = integerFlag("--t", flags.t);
      const n = integerFlag("--n", flags.n);
      try {
        checkThreshold(t, n);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new DkeygenError(ErrorCodes.USAGE, `--t/--n: ${message}`);
      }
      checkAdminFlags(flags);
      if (flags.for !== undefined && !REQUESTER_NAME.test(flags.for)) {
        throw new DkeygenError(ErrorCodes.USAGE, "--for wants a requester's name.");
      }
      const admin = await connectAdmin(flags);
      try {
        const key = await admin.thresholdKeygen({
          suite: flags.suite,
          t,
          n,
          ...(flags.for === undefined ? {} : { owner: flags.for }),
        });
        if (flags.json) {
          printJson(key);
          return;
        }
        printTable([
          ["key", key.id],
          ["suite", key.suite],
          ["threshold", `${key.t} of ${key.n}`],
          ["group public key", key.groupPublicKey],
          ...(key.outputKey === undefined
            ? []
            : ([
                ["output key (BIP 86)", key.outputKey],
                ["address (P2TR)", key.address!],
              ] as [string, string][])),
          ["holders", key.holders.join("\n")],
          ["created", key.createdAt],
        ]);
      } finally {
        admin.close();
      }
    });
}

/** `--key` is a record id (26 characters of Crockford base32), and the admin flags are sound. */
function checkKeyFlags(flags: AdminFlags & { key: string }): void {
  if (!/^[0-9A-HJKMNP-TV-Z]{26}$/.test(flags.key)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      `--key wants a key id (26 characters); got "${flags.key}".`,
    );
  }
  checkAdminFlags(flags);
}
