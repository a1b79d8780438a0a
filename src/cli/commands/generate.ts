/** `dkeygen generate PURPOSE`: asks the running server for a round and prints the stored record. */
import { join } from "node:path";
import type { Command } from "commander";
import { AdminClient } from "../../client/admin-client.js";
import { fromBase64url } from "../../crypto/base64url.js";
import { Secret } from "../../crypto/secret.js";
import { readSecretFile } from "../../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import type { PublicRecordWire } from "../../protocol/messages.js";
import { ADMIN_TOKEN_FILE, readServerInfo } from "../../server/runtime.js";
import { dataDirOption, parseParams } from "../options.js";
import { printJson, printTable } from "../output.js";

export interface AdminFlags {
  dataDir?: string;
  server?: string;
  adminTokenFile?: string;
  serverFingerprint?: string;
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
    .option("--server-fingerprint <fp>", "require this server key fingerprint");
}

export async function connectAdmin(flags: AdminFlags): Promise<AdminClient> {
  const dataDir = dataDirOption(flags.dataDir, "server");
  let url = flags.server;
  let fingerprint = flags.serverFingerprint;
  if (url === undefined) {
    const info = await readServerInfo(dataDir);
    url = info.url;
    fingerprint ??= info.fingerprint;
  }
  let tokenText: string;
  if (process.env.DKEYGEN_ADMIN_TOKEN && flags.adminTokenFile === undefined) {
    tokenText = process.env.DKEYGEN_ADMIN_TOKEN;
  } else {
    const path = flags.adminTokenFile ?? join(dataDir, ADMIN_TOKEN_FILE);
    try {
      tokenText = (await readSecretFile(path)).toString("utf8");
    } catch (cause) {
      if (cause instanceof DkeygenError) throw cause;
      throw new DkeygenError(ErrorCodes.UNAUTHORIZED, `Cannot read the admin token at ${path}.`, {
        cause,
      });
    }
  }
  const token = new Secret(fromBase64url(tokenText.trim(), "admin token", 32));
  return AdminClient.connect({
    url,
    token,
    ...(fingerprint === undefined ? {} : { expectedFingerprint: fingerprint }),
  });
}

export function printRecord(record: PublicRecordWire): void {
  process.stdout.write(`record ${record.id}\n`);
  const rows: [string, string][] = [
    ["purpose", record.purpose],
    ["algorithm", record.algorithm],
    ["round", record.roundId],
    ["created", record.createdAt],
    ["contributors", String(record.participants.length)],
  ];
  if (record.owner !== undefined) rows.push(["for", record.owner]);
  for (const [key, value] of Object.entries(record.public)) {
    rows.push([key, typeof value === "string" ? value : JSON.stringify(value)]);
  }
  printTable(rows);
}

interface GenerateFlags extends AdminFlags {
  param: string[];
  for?: string;
  json?: boolean;
}

export function registerGenerate(program: Command): void {
  withAdminOptions(
    program
      .command("generate")
      .description("run a round on the running server; prints the stored record's public part")
      .argument(
        "<purpose>",
        "what to generate: otp, hotp, totp, rsa, ecc, wallet, multisig, nonce",
      ),
  )
    .option(
      "--param <key=value>",
      "a purpose option (repeatable)",
      (v: string, acc: string[]) => [...acc, v],
      [],
    )
    .option("--for <requester>", "the requesting client entitled to the secret part")
    .option("--json", "print the record as JSON")
    .action(async (purpose: string, flags: GenerateFlags) => {
      const params = parseParams(flags.param);
      const admin = await connectAdmin(flags);
      try {
        const record = await admin.generate(purpose, params, flags.for);
        if (flags.json) printJson(record);
        else printRecord(record);
      } finally {
        admin.close();
      }
    });
}
