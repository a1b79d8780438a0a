/**
 * `dkeygen audit record ID`: the owner of a record (a requesting client, with the same data
 * folder and options as `key fetch`) checks that the record came from a committed round of the
 * log's contributors and that nobody could choose it (docs/PROTOCOL.md §15.6). It fetches the
 * record, its opening (sealed to this client's key), the log identity, the checkpoint, the round's
 * entry and its inclusion proof; src/audit/record-audit.ts checks them. With `--admin`, a record
 * the admin owns (made by `dkeygen generate` without --for): its opening comes over the admin
 * session (`admin.opening`; --server is then the WebSocket URL, --data-dir the server's) and the
 * log from the distribution server (--log-server, or server.json's); the checks are the same. Prints each step (text,
 * or `--json`); exit status 1 when any fails. Never prints a phrase, a content key, the server
 * secret or a derivation secret.
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { auditRecord, type RecordAuditReport } from "../../audit/record-audit.js";
import {
  THRESHOLD_AUDIT_STATEMENT,
  THRESHOLD_KEY_PURPOSE,
} from "../../audit/threshold-record-audit.js";
import { createHttpCall } from "../../client/http-call.js";
import { isFingerprint } from "../../crypto/fingerprint.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import type { JsonObject } from "../../json.js";
import type { PublicRecordWire } from "../../protocol/messages.js";
import { readServerInfo } from "../../server/runtime.js";
import { PrintedFailure } from "../exit-status.js";
import { onUserPath } from "../file-errors.js";
import { caOption, dataDirOption } from "../options.js";
import { printJson, printTable } from "../output.js";
import { checkAdminFlags, connectAdmin } from "./generate.js";
import { type RequesterFlags, requesterClient, withRequesterOptions } from "./requester.js";

interface AuditRecordFlags extends RequesterFlags {
  serverFingerprint?: string;
  admin?: boolean;
  adminTokenFile?: string;
  logServer?: string;
  passphraseFile?: string;
  json?: boolean;
}

const usage = (message: string) => new DkeygenError(ErrorCodes.USAGE, message);

/** What a passing audit establishes, in one sentence. */
export const AUDIT_STATEMENT =
  "this key came from a committed round of these contributors, and nobody could choose it";

/** Adds `audit record` under the `audit` command (made here if it is not there yet). */
export function registerAuditRecord(program: Command): void {
  const audit =
    program.commands.find((c) => c.name() === "audit") ??
    program.command("audit").description("check what a server published");
  withRequesterOptions(
    audit
      .command("record")
      .description(
        "as a record's owner, check it against its round's log entry: the committed server secret and phrases derive it, and nobody could choose it",
      )
      .argument("<id>", "record id"),
  )
    .option(
      "--server-fingerprint <fp>",
      "require this server key fingerprint (SHA256:…); without it the audit prints the one it saw",
    )
    .option(
      "--passphrase-file <file>",
      "wallet: the BIP39 passphrase it was made with (or DKEYGEN_WALLET_PASSPHRASE), to re-derive it",
    )
    .option("--json", "print the report as JSON")
    .option(
      "--admin",
      "audit a record the admin owns, over the admin session: --server is then the WebSocket URL and --data-dir the server's",
    )
    .option(
      "--admin-token-file <file>",
      "with --admin: admin token file (default: <data-dir>/admin.token); or DKEYGEN_ADMIN_TOKEN",
    )
    .option(
      "--log-server <url>",
      "with --admin: the distribution server serving the log (http:// or https://; default: from <data-dir>/server.json)",
    )
    .action(async (id: string, flags: AuditRecordFlags) => {
      if (!/^[0-9A-HJKMNP-TV-Z]{26}$/.test(id)) {
        throw usage(
          "A record id is 26 characters of Crockford base32 (0-9, A-Z without I, L, O, U), as generate prints it.",
        );
      }
      if (flags.serverFingerprint !== undefined && !isFingerprint(flags.serverFingerprint)) {
        throw usage("--server-fingerprint wants SHA256: and 43 base64 characters.");
      }
      const passphrase =
        flags.passphraseFile !== undefined
          ? (
              await onUserPath("--passphrase-file", flags.passphraseFile, "read", () =>
                readFile(flags.passphraseFile!, "utf8"),
              )
            ).replace(/\r?\n$/, "")
          : process.env.DKEYGEN_WALLET_PASSPHRASE || undefined;
      const { record, opening, threshold, logGet } = flags.admin
        ? await adminSource(id, flags)
        : await requesterSource(id, flags);
      const json = async (path: string): Promise<unknown> => {
        const body = await logGet(path);
        try {
          return JSON.parse(body.toString("utf8"));
        } catch {
          throw new DkeygenError(
            ErrorCodes.MALFORMED_MESSAGE,
            `The answer to GET ${path.split("?")[0]} is not JSON.`,
          );
        }
      };
      const identity = await json("/v1/log/identity");
      const checkpoint = (await logGet("/v1/log/checkpoint")).toString("utf8");
      // The size the proof is asked for; the audit checks it against the signed checkpoint.
      const size = /^[^\n]*\n(0|[1-9][0-9]{0,15})\n/.exec(checkpoint)?.[1];
      if (size === undefined) {
        throw new DkeygenError(
          ErrorCodes.MALFORMED_MESSAGE,
          "The server's checkpoint does not name a tree size.",
        );
      }
      const proof = (await json(
        `/v1/log/proof/inclusion?roundId=${encodeURIComponent(record.roundId)}&size=${size}`,
      )) as { index?: unknown };
      const index = proof?.index;
      if (!Number.isSafeInteger(index)) {
        throw new DkeygenError(
          ErrorCodes.MALFORMED_MESSAGE,
          "The inclusion proof names no entry index.",
        );
      }
      const i = index as number;
      const entries = (await json(`/v1/log/entries?start=${i}&end=${i + 1}`)) as {
        entries?: { index?: unknown; leaf?: unknown }[];
      };
      const item = entries?.entries?.[0];
      if (item?.index !== i || typeof item.leaf !== "string") {
        throw new DkeygenError(
          ErrorCodes.MALFORMED_MESSAGE,
          `GET /v1/log/entries gave no entry ${i}, though its inclusion proof names it.`,
        );
      }
      const report = await auditRecord({
        record: { ...record, public: record.public as JsonObject },
        opening,
        identity,
        ...(flags.serverFingerprint === undefined
          ? {}
          : { serverFingerprint: flags.serverFingerprint }),
        checkpoint,
        proof,
        leaf: new Uint8Array(Buffer.from(item.leaf, "base64")),
        ...(passphrase === undefined ? {} : { passphrase }),
      });
      printReport(
        report,
        record.purpose,
        threshold ? THRESHOLD_AUDIT_STATEMENT : AUDIT_STATEMENT,
        flags.json === true,
      );
      if (!report.ok) {
        const failed = report.steps.filter((s) => s.status === "failed");
        const first = failed[0] ?? report.steps.find((s) => s.status !== "passed")!;
        throw new PrintedFailure(
          new DkeygenError(
            ErrorCodes.BAD_SIGNATURE,
            `The audit of record ${id} failed (${failed.length} step${failed.length === 1 ? "" : "s"}): ${first.step}: ${first.message}`,
          ),
        );
      }
    });
}

/** What the audit checks, and where the log's public routes are read. */
interface AuditSource {
  record: PublicRecordWire;
  opening: JsonObject | undefined;
  threshold: boolean;
  logGet: (pathAndQuery: string) => Promise<Buffer>;
}

/** A requester's record: its opening from the distribution server, sealed to its key. */
async function requesterSource(id: string, flags: AuditRecordFlags): Promise<AuditSource> {
  if (flags.adminTokenFile !== undefined || flags.logServer !== undefined) {
    throw usage("--admin-token-file and --log-server go with --admin.");
  }
  const client = await requesterClient(flags);
  // A threshold key has no opening (no machine held its secret): its audit is its record
  // against its session's log entry (§15.6, §16.4).
  const shown = await client.getKey(id);
  const threshold = shown.purpose === THRESHOLD_KEY_PURPOSE;
  const { record, opening } = threshold
    ? { record: shown, opening: undefined }
    : await client.fetchOpening(id);
  return { record, opening, threshold, logGet: (path) => client.logGet(path) };
}

/**
 * An admin-owned record (`--admin`): its opening over the admin session (`admin.opening`, sealed
 * to a one-off key), the log from the distribution server's public routes (--log-server, or the
 * one the server's server.json names).
 */
async function adminSource(id: string, flags: AuditRecordFlags): Promise<AuditSource> {
  checkAdminFlags(flags);
  if (flags.logServer !== undefined && !/^https?:\/\/[^/]/i.test(flags.logServer)) {
    throw usage(`--log-server wants an http:// or https:// URL; got "${flags.logServer}".`);
  }
  let base = flags.logServer;
  if (base === undefined) {
    const info = await readServerInfo(dataDirOption(flags.dataDir, "server")).catch(
      () => undefined,
    );
    base = info?.httpUrl;
    if (base === undefined) {
      throw usage(
        "--admin reads the log from the distribution server: name it with --log-server http://… (the server's server.json names none).",
      );
    }
  }
  const ca = /^https:/i.test(base) ? await caOption(flags.ca, base) : undefined;
  const admin = await connectAdmin(flags);
  let fetched: { record: PublicRecordWire; opening: JsonObject };
  try {
    fetched = await admin.fetchOpening(id);
  } finally {
    admin.close();
  }
  const http = createHttpCall(ca === undefined ? {} : { ca });
  const root = base.replace(/\/+$/, "");
  const logGet = async (path: string): Promise<Buffer> => {
    const response = await http(`${root}${path}`, { method: "GET" });
    if (response.status === 200) return response.body;
    throw new DkeygenError(
      response.status === 404 ? ErrorCodes.NOT_FOUND : ErrorCodes.UNAVAILABLE,
      `GET ${path.split("?")[0]} answered HTTP ${response.status}.`,
    );
  };
  return { ...fetched, threshold: false, logGet };
}

function printReport(
  report: RecordAuditReport,
  purpose: string,
  statement: string,
  json: boolean,
): void {
  if (json) {
    printJson({
      ok: report.ok,
      recordId: report.recordId,
      roundId: report.roundId,
      purpose,
      server: report.server ?? null,
      checkpoint: report.checkpoint ?? null,
      entryIndex: report.entryIndex ?? null,
      contributors: report.contributors ?? null,
      steps: report.steps,
      statement: report.ok ? statement : null,
    });
    return;
  }
  const rows: [string, string][] = [
    ["record", `${report.recordId} (${purpose})`],
    ["round", report.roundId],
  ];
  if (report.server) {
    rows.push([
      "server",
      report.server.pinned
        ? `${report.server.fingerprint} (as pinned)`
        : `${report.server.fingerprint} (not pinned: check it, then pin it with --server-fingerprint ${report.server.fingerprint})`,
    ]);
  }
  if (report.checkpoint) {
    rows.push(["checkpoint", `size ${report.checkpoint.size}, root ${report.checkpoint.rootHash}`]);
  }
  if (report.entryIndex !== undefined) rows.push(["log entry", String(report.entryIndex)]);
  if (report.contributors) {
    rows.push(["contributors", `${report.contributors.length}: ${report.contributors.join(", ")}`]);
  }
  for (const s of report.steps) {
    const mark = s.status === "passed" ? "ok" : s.status === "failed" ? "FAILED" : "skipped";
    rows.push([s.step, `${mark}: ${s.message}`]);
  }
  const failed = report.steps.filter((s) => s.status === "failed").length;
  rows.push([
    "result",
    report.ok
      ? `every check passed: ${statement}`
      : `FAILED: ${failed} step${failed === 1 ? "" : "s"} failed`,
  ]);
  printTable(rows);
}
