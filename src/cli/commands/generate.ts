/** `dkeygen generate PURPOSE`: asks the running server for a round and prints the stored record. */
import { join } from "node:path";
import type { Command } from "commander";
import { AdminClient } from "../../client/admin-client.js";
import { PinStore } from "../../client/pins.js";
import { fromBase64url } from "../../crypto/base64url.js";
import { isFingerprint } from "../../crypto/fingerprint.js";
import { Secret } from "../../crypto/secret.js";
import { ensureDataDir, readSecretFile } from "../../datadir/files.js";
import { PURPOSES } from "../../derive/index.js";
import { MAX_MULTISIG_KEYS } from "../../derive/multisig.js";
import { DkeygenError, ErrorCodes, isDkeygenError } from "../../errors.js";
import type { JsonObject } from "../../json.js";
import type { PublicRecordWire } from "../../protocol/messages.js";
import { contributorJoinHint } from "../../server/distribution/otp-pool.js";
import { REQUESTER_NAME } from "../../server/requesters.js";
import { ADMIN_TOKEN_FILE, readServerInfo } from "../../server/runtime.js";
import { fileError } from "../file-errors.js";
import { caOption, dataDirOption } from "../options.js";
import { checkPurpose, purposeParams, withPurposeOptions } from "../purpose-options.js";
import { checkQrFiles, qrNeedsReveal, type ShowOptions, showResult } from "../render-result.js";

export interface AdminFlags {
  dataDir?: string;
  server?: string;
  adminTokenFile?: string;
  serverFingerprint?: string;
  ca?: string;
}

/** Adds the options that locate and authenticate to a running server. */
export function withAdminOptions(command: Command): Command {
  return command
    .option("--data-dir <dir>", "the server's data folder, to find it and its admin token")
    .option("--server <url>", "the server's URL (default: from <data-dir>/server.json)")
    .option(
      "--admin-token-file <file>",
      "admin token file (default: <data-dir>/admin.token); or DKEYGEN_ADMIN_TOKEN",
    )
    .option("--server-fingerprint <fp>", "require this server key fingerprint")
    .option("--ca <file>", "wss:// only: trust only this CA's PEM certificate(s) for the server");
}

/**
 * An authenticated admin session with the server. The server's key is checked against, in order:
 * `--server-fingerprint`; the fingerprint in the server's own server.json (when the server is
 * found through its data folder); or the admin's pins ($DKEYGEN_HOME/admin/known_servers.json,
 * trust on first use), so a `--server URL` that later presents another key is refused loudly.
 */
/** Refuses a --server or --server-fingerprint that cannot be right, before anything is read. */
export function checkAdminFlags(flags: AdminFlags): void {
  if (flags.server !== undefined && !/^wss?:\/\/[^/]/i.test(flags.server)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      /^https?:/i.test(flags.server)
        ? `--server wants the server's WebSocket URL (ws:// or wss://, its --listen port, default 7420); ${flags.server} is an HTTP URL, the distribution server's.`
        : `--server wants a ws:// or wss:// URL; got "${flags.server}".`,
    );
  }
  if (flags.ca !== undefined && flags.server !== undefined && !/^wss:/i.test(flags.server)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      `--ca is for a TLS server (wss://); ${flags.server} is plain.`,
    );
  }
  if (flags.serverFingerprint !== undefined && !isFingerprint(flags.serverFingerprint)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "--server-fingerprint wants SHA256: and 43 base64 characters.",
    );
  }
}

export async function connectAdmin(flags: AdminFlags): Promise<AdminClient> {
  checkAdminFlags(flags);
  const dataDir = dataDirOption(flags.dataDir, "server");
  let url = flags.server;
  let fingerprint = flags.serverFingerprint;
  if (url === undefined) {
    const info = await readServerInfo(dataDir);
    url = info.url;
    fingerprint ??= info.fingerprint;
  }
  const ca = await caOption(flags.ca, url);
  let tokenText: string;
  if (process.env.DKEYGEN_ADMIN_TOKEN && flags.adminTokenFile === undefined) {
    tokenText = process.env.DKEYGEN_ADMIN_TOKEN;
  } else {
    const path = flags.adminTokenFile ?? join(dataDir, ADMIN_TOKEN_FILE);
    try {
      tokenText = (await readSecretFile(path)).toString("utf8");
    } catch (cause) {
      if (cause instanceof DkeygenError) throw cause;
      const mapped = fileError(
        flags.adminTokenFile === undefined ? "--data-dir" : "--admin-token-file",
        flags.adminTokenFile === undefined ? dataDir : path,
        flags.adminTokenFile === undefined ? "folder" : "read",
        cause,
      );
      if (mapped !== cause) throw mapped;
      throw new DkeygenError(ErrorCodes.UNAUTHORIZED, `Cannot read the admin token at ${path}.`, {
        cause,
      });
    }
  }
  const token = new Secret(fromBase64url(tokenText.trim(), "admin token", 32));
  let pins: PinStore | undefined;
  if (fingerprint === undefined) {
    const adminDir = dataDirOption(undefined, "admin");
    await ensureDataDir(adminDir);
    pins = new PinStore(adminDir);
  }
  try {
    return await AdminClient.connect({
      url,
      token,
      ...(fingerprint === undefined ? {} : { expectedFingerprint: fingerprint }),
      ...(pins === undefined ? {} : { pins }),
      ...(ca === undefined ? {} : { ca }),
    });
  } finally {
    token.wipe();
  }
}

/**
 * A round that missed its quorum (too few contributors connected, or too few answered), told where
 * contributors join and how: the URL this command reached the server at.
 */
export function namingContributors(url: string): (error: unknown) => never {
  return (error) => {
    if (!isDkeygenError(error, ErrorCodes.QUORUM_NOT_MET)) throw error;
    throw new DkeygenError(
      ErrorCodes.QUORUM_NOT_MET,
      `${error.message} Contributors join at ${url}; ${contributorJoinHint(url)}.`,
    );
  };
}

/**
 * The header rows of a record; `ownerName` shows a registration id with the name it was for, and
 * `holderNames` a split set's registration ids with the names they were for.
 */
export function recordHeader(
  record: PublicRecordWire,
  ownerName?: string,
  holderNames?: string[],
): [string, string][] {
  const rows: [string, string][] = [
    ["record", record.id],
    ["purpose", record.purpose],
    // "derivation": a public part may have an "algorithm" of its own (a TOTP's hash).
    ["derivation", record.algorithm],
    ["round", record.roundId],
    ["created", record.createdAt],
    ["contributors", String(record.participants.length)],
  ];
  if (record.owner !== undefined) {
    const shown =
      ownerName !== undefined && ownerName !== record.owner
        ? `${ownerName} (registration ${record.owner})`
        : record.owner;
    rows.push(["for", shown]);
  }
  if (record.holders !== undefined) {
    record.holders.forEach((holder, i) => {
      const name = holderNames?.[i];
      const shown =
        name !== undefined && name !== holder ? `${name} (registration ${holder})` : holder;
      rows.push([`key ${i} for`, shown]);
    });
    rows.push([
      "custody",
      "split: each holder fetches its own key alone (dkeygen key fetch); the server that made the set knows every key",
    ]);
  } else if (record.purpose === "multisig") {
    rows.push([
      "custody",
      "escrow: every key is known to the server and to the set's one owner; for a set no machine knows, use dkeygen threshold keygen",
    ]);
  }
  return rows;
}

/** `--holders a,b,c`: the names, checked before anything is read (multisig only). */
function holdersFlag(flags: GenerateFlags, purpose: string): string[] | undefined {
  if (flags.holders === undefined) return undefined;
  const usage = (message: string) => new DkeygenError(ErrorCodes.USAGE, message);
  if (purpose !== "multisig") throw usage(`--holders is for multisig; ${purpose} has no holders.`);
  if (flags.for !== undefined) {
    throw usage("--holders and --for exclude each other: a split set has no one owner.");
  }
  if (flags.revealSecret) {
    throw usage(
      "--holders and --reveal-secret exclude each other: each holder fetches its own key, nobody sees them all.",
    );
  }
  const names = flags.holders.split(",").map((name) => name.trim());
  for (const name of names) {
    if (!REQUESTER_NAME.test(name)) {
      throw usage(
        `--holders wants requesters' names, comma-separated (letters, digits and . _ @ -); got "${name}".`,
      );
    }
  }
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated !== undefined) throw usage(`--holders names ${repeated} twice.`);
  if (names.length > MAX_MULTISIG_KEYS) {
    throw usage(`--holders names ${names.length} holders; a set has at most ${MAX_MULTISIG_KEYS}.`);
  }
  return names;
}

interface GenerateFlags extends AdminFlags, ShowOptions {
  for?: string;
  holders?: string;
  revealSecret?: boolean;
  [option: string]: unknown;
}

export function registerGenerate(program: Command): void {
  withPurposeOptions(
    withAdminOptions(
      program
        .command("generate")
        .description("run a round on the running server; prints the stored record's public part")
        .argument("<purpose>", `what to generate: ${PURPOSES.join(", ")}`),
    ),
  )
    .option("--for <requester>", "the requesting client entitled to the secret part")
    .option(
      "--holders <names>",
      "multisig: split the set among these requesters (a,b,c), key i for the i-th alone; --n defaults to their count",
    )
    .option("--reveal-secret", "also print the secret part (sealed to a one-off key in transit)")
    .option("--qr", "with --reveal-secret: draw the otpauth:// QR code in the terminal")
    .option("--qr-png <file>", "with --reveal-secret: write the otpauth:// QR code as PNG")
    .option("--qr-svg <file>", "with --reveal-secret: write the otpauth:// QR code as SVG")
    .option("--json", "print the record as JSON")
    .action(async (purpose: string, flags: GenerateFlags) => {
      const refusal = qrNeedsReveal(flags);
      if (refusal) throw new DkeygenError(ErrorCodes.USAGE, refusal);
      checkAdminFlags(flags);
      if (flags.for !== undefined && !REQUESTER_NAME.test(flags.for)) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          "--for wants a requester's name: letters, digits and . _ @ - (up to 64, starting with a letter or digit).",
        );
      }
      const holders = holdersFlag(flags, purpose);
      const params = await purposeParams(flags);
      if (holders !== undefined) params.n ??= String(holders.length);
      const { parsed } = checkPurpose(purpose, params); // a typo fails here, before any round runs
      if (holders !== undefined && (parsed as { n: number }).n !== holders.length) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          `--holders names ${holders.length} holders for a set of --n ${(parsed as { n: number }).n} keys; name one holder per key.`,
        );
      }
      await checkQrFiles(flags); // before the round: its secret is shown this once
      const admin = await connectAdmin(flags);
      try {
        const made = flags.revealSecret
          ? admin.generateRevealed(purpose, params, flags.for)
          : admin
              .generate(purpose, params, flags.for, holders)
              .then((stored) => ({ record: stored, secret: undefined }));
        const { record, secret } = await made.catch(namingContributors(admin.url));
        await showResult(
          recordHeader(record, flags.for, holders),
          record.public as JsonObject,
          secret,
          flags,
          {
            ...record,
          },
        );
      } finally {
        admin.close();
      }
    });
}
