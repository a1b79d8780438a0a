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
import { DkeygenError, ErrorCodes } from "../../errors.js";
import type { JsonObject } from "../../json.js";
import type { PublicRecordWire } from "../../protocol/messages.js";
import { REQUESTER_NAME } from "../../server/requesters.js";
import { ADMIN_TOKEN_FILE, readServerInfo } from "../../server/runtime.js";
import { fileError } from "../file-errors.js";
import { caOption, dataDirOption } from "../options.js";
import { checkPurpose, purposeParams, withPurposeOptions } from "../purpose-options.js";
import { qrNeedsReveal, type ShowOptions, showResult } from "../render-result.js";

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

/** The header rows of a record; `ownerName` shows a registration id with the name it was for. */
export function recordHeader(record: PublicRecordWire, ownerName?: string): [string, string][] {
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
  return rows;
}

interface GenerateFlags extends AdminFlags, ShowOptions {
  for?: string;
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
      const params = await purposeParams(flags);
      checkPurpose(purpose, params); // a typo fails here, before any round runs
      const admin = await connectAdmin(flags);
      try {
        const { record, secret } = flags.revealSecret
          ? await admin.generateRevealed(purpose, params, flags.for)
          : { record: await admin.generate(purpose, params, flags.for), secret: undefined };
        await showResult(
          recordHeader(record, flags.for),
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
