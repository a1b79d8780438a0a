/**
 * `dkeygen audit log`: verifies a server's whole transparency log of rounds (docs/PROTOCOL.md
 * §15.4) from its public HTTP routes (`--server`) or from an export (`--file`), trusting nothing
 * the server says until it is checked (src/audit/log-audit.ts does the checking). Prints a report
 * (text, or `--json`); exit status 1 when any check fails.
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import { base64 } from "@scure/base";
import type { Command } from "commander";
import { type AuditReport, auditLog, witnessVerifiers } from "../../audit/log-audit.js";
import { decodeLeaf, ExportWriter, type OpenedExport, openExport } from "../../audit/log-export.js";
import { createHttpCall, type HttpCall } from "../../client/http-call.js";
import { fromBase64url } from "../../crypto/base64url.js";
import { isFingerprint } from "../../crypto/fingerprint.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { PrintedFailure } from "../exit-status.js";
import { checkOutputFile, onUserPath } from "../file-errors.js";
import { caOption, parsePositiveInt } from "../options.js";
import { printJson, printTable } from "../output.js";

interface AuditLogFlags {
  server?: string;
  file?: string;
  ca?: string;
  serverFingerprint?: string;
  witness: string[];
  minCosignatures?: string;
  since?: string;
  save?: string;
  export?: string;
  json?: boolean;
}

const usage = (message: string) => new DkeygenError(ErrorCodes.USAGE, message);

/** Entries asked for per request (the server answers at most 1000). */
const PAGE = 1000;
/** Entries requests in flight at once. */
const PAGES_IN_FLIGHT = 3;
/** The largest entries answer read (1000 entries of a 256-contributor round fit). */
const MAX_PAGE_BYTES = 256 * 1024 * 1024;

/** Adds `audit log` under the `audit` command (made here if it is not there yet). */
export function registerAudit(program: Command): void {
  // `audit record` (audit-record.ts) shares the `audit` command: whichever comes first makes it.
  const audit =
    program.commands.find((c) => c.name() === "audit") ??
    program.command("audit").description("check what a server published");
  audit
    .command("log")
    .description(
      "verify a server's whole log: identity, checkpoint, cosignatures, every entry's signatures, the tree; report rounds and abort rates",
    )
    .option("--server <url>", "the distribution server's URL (http:// or https://)")
    .option("--file <export>", "audit a log export (written by --export) instead of a server")
    .option("--ca <file>", "https:// only: trust only this CA's PEM certificate(s) for the server")
    .option(
      "--server-fingerprint <fp>",
      "require this server key fingerprint (SHA256:…); without it the audit prints the one it saw",
    )
    .option(
      "--witness <vkey>",
      "a witness's cosignature verifier key (type 0x04); repeat for each witness",
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option(
      "--min-cosignatures <k>",
      "fail unless the checkpoint carries at least K cosignatures from the --witness keys (default 0)",
    )
    .option("--since <file>", "a checkpoint saved earlier (--save): the log must extend it")
    .option("--save <file>", "write the checkpoint, once verified, to this file (for --since)")
    .option("--export <file>", "write what the server published to this file (for --file)")
    .option("--json", "print the report as JSON")
    .action(async (options: Omit<AuditLogFlags, "witness"> & { witness?: string[] }) => {
      const flags: AuditLogFlags = { ...options, witness: options.witness ?? [] };
      const minCosignatures = await checkFlags(flags);
      const since =
        flags.since === undefined
          ? undefined
          : await onUserPath("--since", flags.since, "read", () => readFile(flags.since!, "utf8"));
      const source = flags.server
        ? await serverSource(flags.server, await caOption(flags.ca, flags.server))
        : await fileSource(flags.file!);
      let writer: ExportWriter | undefined;
      let report: AuditReport;
      try {
        const identity = await source.identity();
        const checkpoint = await source.checkpoint();
        if (flags.export !== undefined) {
          writer = await onUserPath("--export", flags.export, "write", () =>
            ExportWriter.create(flags.export!, identity, checkpoint),
          );
        }
        const progress = progressLine(flags);
        report = await auditLog({
          identity,
          checkpoint,
          leaves: (size) => tee(source.leaves(size), writer),
          ...(flags.serverFingerprint === undefined
            ? {}
            : { serverFingerprint: flags.serverFingerprint }),
          witnesses: flags.witness,
          minCosignatures,
          ...(since === undefined ? {} : { since }),
          ...(source.consistencyProof ? { consistencyProof: source.consistencyProof } : {}),
          onProgress: progress.update,
        });
        progress.done();
        if (writer !== undefined) {
          const w = writer;
          writer = undefined;
          await onUserPath("--export", flags.export!, "write", () => w.close());
        }
      } finally {
        await writer?.abort();
        await source.close();
      }
      let saved = false;
      if (flags.save !== undefined && report.ok && report.checkpointNote !== undefined) {
        const note = report.checkpointNote;
        const path = flags.save;
        await onUserPath("--save", path, "write", async () => {
          const temp = `${path}.tmp-${process.pid}`;
          await writeFile(temp, note, { mode: 0o644 });
          await rename(temp, path);
        });
        saved = true;
      }
      printReport(report, {
        source: flags.server ?? flags.file!,
        saved: saved ? flags.save : undefined,
        notSaved: flags.save !== undefined && !saved ? flags.save : undefined,
        exported: flags.export,
        json: flags.json === true,
      });
      if (!report.ok) {
        const first = report.failures[0]!;
        throw new PrintedFailure(
          new DkeygenError(
            ErrorCodes.BAD_SIGNATURE,
            `The log audit failed (${report.failures.length} failure${report.failures.length === 1 ? "" : "s"}): ${first.index === undefined ? "" : `entry ${first.index}: `}${first.message}`,
          ),
        );
      }
    });
}

/** Every option checked before anything is read or sent; returns --min-cosignatures. */
async function checkFlags(flags: AuditLogFlags): Promise<number> {
  if ((flags.server === undefined) === (flags.file === undefined)) {
    throw usage(
      "Give the log to audit: --server URL (a distribution server) or --file EXPORT, one of them.",
    );
  }
  if (flags.server !== undefined && !/^https?:\/\/[^/]/i.test(flags.server)) {
    throw usage(
      /^wss?:/i.test(flags.server)
        ? `--server wants the distribution server's URL (http:// or https://, its --http-listen port); ${flags.server} is the WebSocket URL.`
        : `--server wants an http:// or https:// URL; got "${flags.server}".`,
    );
  }
  if (flags.ca !== undefined && (flags.server === undefined || !/^https:/i.test(flags.server))) {
    throw usage(
      `--ca is for a TLS server (--server https://…); ${flags.server === undefined ? "--file reads no server" : `${flags.server} is plain`}.`,
    );
  }
  if (flags.serverFingerprint !== undefined && !isFingerprint(flags.serverFingerprint)) {
    throw usage("--server-fingerprint wants SHA256: and 43 base64 characters.");
  }
  try {
    witnessVerifiers(flags.witness);
  } catch (error) {
    throw usage(`--witness: ${(error as Error).message}`);
  }
  const min =
    flags.minCosignatures === undefined
      ? 0
      : parsePositiveInt(flags.minCosignatures, "--min-cosignatures", 0, 100);
  if (min > flags.witness.length) {
    throw usage(
      `--min-cosignatures ${min} needs at least ${min} --witness key(s); ${flags.witness.length} given.`,
    );
  }
  if (flags.save !== undefined) await checkOutputFile("--save", flags.save, { replace: true });
  if (flags.export !== undefined)
    await checkOutputFile("--export", flags.export, { replace: true });
  return min;
}

/** Where the published log comes from. */
export interface LogSource {
  identity(): Promise<unknown>;
  checkpoint(): Promise<string>;
  leaves(size: number): AsyncIterable<Uint8Array[]>;
  consistencyProof?: (from: number, to: number) => Promise<Uint8Array[]>;
  close(): Promise<void>;
}

async function* tee(
  leaves: AsyncIterable<Uint8Array[]>,
  writer: ExportWriter | undefined,
): AsyncGenerator<Uint8Array[]> {
  for await (const batch of leaves) {
    await writer?.add(batch);
    yield batch;
  }
}

async function fileSource(path: string): Promise<LogSource> {
  const opened: OpenedExport = await onUserPath("--file", path, "read", () => openExport(path));
  return {
    identity: async () => opened.identity,
    checkpoint: async () => opened.checkpoint,
    leaves: () => opened.entries(),
    close: () => opened.close(),
  };
}

/** The log routes of a distribution server (PROTOCOL §15.3), over HTTP(S) as http-call.ts does. */
export async function serverSource(url: string, ca: string | undefined): Promise<LogSource> {
  const base = url.replace(/\/+$/, "");
  const small = createHttpCall({ ...(ca === undefined ? {} : { ca }), timeoutMs: 30_000 });
  const large: HttpCall = createHttpCall({
    ...(ca === undefined ? {} : { ca }),
    timeoutMs: 120_000,
    maxResponseBytes: MAX_PAGE_BYTES,
  });
  const get = async (path: string, call: HttpCall = small): Promise<Buffer> => {
    const answer = await call(`${base}${path}`, { method: "GET" });
    if (answer.status !== 200) {
      let said = "";
      try {
        const body = JSON.parse(answer.body.toString("utf8")) as { error?: { message?: string } };
        if (typeof body.error?.message === "string") said = `: ${body.error.message}`;
      } catch {
        // not a JSON error document
      }
      throw new DkeygenError(
        answer.status === 404 ? ErrorCodes.NOT_FOUND : ErrorCodes.UNAVAILABLE,
        answer.status === 404 && path === "/v1/log/identity"
          ? `${base} does not serve a transparency log (GET /v1/log/identity answered 404): is it a dkeygen distribution server of this version?`
          : `GET ${path} answered ${answer.status}${said}.`,
      );
    }
    return answer.body;
  };
  const getJson = async (path: string, call?: HttpCall): Promise<unknown> => {
    const body = await get(path, call);
    try {
      return JSON.parse(body.toString("utf8"));
    } catch {
      throw new DkeygenError(
        ErrorCodes.MALFORMED_MESSAGE,
        `The answer to GET ${path} is not JSON.`,
      );
    }
  };

  /** Entries start .. end−1, in as many requests as the server needs to give them all. */
  const fetchRange = async (start: number, end: number): Promise<Uint8Array[]> => {
    const leaves: Uint8Array[] = [];
    while (start + leaves.length < end) {
      const from = start + leaves.length;
      const path = `/v1/log/entries?start=${from}&end=${end}`;
      const answer = (await getJson(path, large)) as { entries?: unknown };
      const entries = answer?.entries;
      if (!Array.isArray(entries)) {
        throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `GET ${path} gave no "entries" list.`);
      }
      if (entries.length === 0) {
        throw new DkeygenError(
          ErrorCodes.MALFORMED_MESSAGE,
          `GET ${path} gave no entries, though the checkpoint covers them.`,
        );
      }
      if (entries.length > end - from) {
        throw new DkeygenError(
          ErrorCodes.MALFORMED_MESSAGE,
          `GET ${path} gave ${entries.length} entries for ${end - from} asked.`,
        );
      }
      entries.forEach((item: { index?: unknown; leaf?: unknown } | null, k) => {
        if (item?.index !== from + k) {
          throw new DkeygenError(
            ErrorCodes.MALFORMED_MESSAGE,
            `GET ${path} gave entry ${String(item?.index)} where entry ${from + k} belongs.`,
          );
        }
        // Only the leaf is read: every check is made on its bytes, and the parsed `entry` the
        // server sends beside it is not used for anything.
        leaves.push(decodeLeaf(item.leaf, `Entry ${from + k}'s leaf`));
      });
    }
    return leaves;
  };

  return {
    identity: () => getJson("/v1/log/identity"),
    checkpoint: async () => (await get("/v1/log/checkpoint")).toString("utf8"),
    leaves: (size) => pages(size, fetchRange),
    consistencyProof: async (from, to) => {
      const path = `/v1/log/proof/consistency?from=${from}&to=${to}`;
      const answer = (await getJson(path)) as { proof?: unknown };
      if (!Array.isArray(answer?.proof)) {
        throw new DkeygenError(ErrorCodes.MALFORMED_MESSAGE, `GET ${path} gave no "proof" list.`);
      }
      return answer.proof.map((hash: unknown) => decodeHash(hash, path));
    },
    close: async () => {},
  };
}

/** A proof hash: standard base64 with padding (base64url taken too); checked by the proof. */
function decodeHash(text: unknown, path: string): Uint8Array {
  if (typeof text === "string") {
    try {
      return base64.decode(text);
    } catch {
      try {
        return fromBase64url(text, "proof hash");
      } catch {
        // below
      }
    }
  }
  throw new DkeygenError(
    ErrorCodes.MALFORMED_MESSAGE,
    `GET ${path} gave a hash that is not base64.`,
  );
}

/** Pages of entries 0 .. size−1 in order, with a few requests in flight. */
async function* pages(
  size: number,
  fetchRange: (start: number, end: number) => Promise<Uint8Array[]>,
): AsyncGenerator<Uint8Array[]> {
  const queue: Promise<Uint8Array[]>[] = [];
  let next = 0;
  const launch = () => {
    while (next < size && queue.length < PAGES_IN_FLIGHT) {
      const start = next;
      next = Math.min(size, start + PAGE);
      const page = fetchRange(start, next);
      page.catch(() => {}); // awaited in order below
      queue.push(page);
    }
  };
  launch();
  while (queue.length > 0) {
    const page = await queue.shift()!;
    launch();
    yield page;
  }
}

/** A progress line on a terminal's standard error for long audits (never with --json). */
function progressLine(flags: AuditLogFlags): {
  update: (done: number, size: number) => void;
  done: () => void;
} {
  if (flags.json || !process.stderr.isTTY) return { update: () => {}, done: () => {} };
  let last = 0;
  let shown = false;
  return {
    update: (done, size) => {
      const now = Date.now();
      if (now - last < 500 || size < 10_000) return;
      last = now;
      shown = true;
      process.stderr.write(`\r  checking entries: ${done} of ${size}`);
    },
    done: () => {
      if (shown) process.stderr.write("\r\x1b[K");
    },
  };
}

const percent = (rate: number) => `${(rate * 100).toFixed(1)}%`;

function printReport(
  report: AuditReport,
  out: {
    source: string;
    saved: string | undefined;
    notSaved: string | undefined;
    exported: string | undefined;
    json: boolean;
  },
): void {
  if (out.json) {
    // Stable field names, in reading order; absent parts (a failed identity stops the audit) null.
    printJson({
      ok: report.ok,
      source: out.source,
      identity: report.identity ?? null,
      checkpoint: report.checkpoint ?? null,
      checks: report.checks,
      entries: report.entries,
      verified: report.verified,
      outcomes: report.outcomes,
      sessions: report.sessions,
      servers: report.servers,
      contributors: report.contributors,
      since: report.since ?? null,
      failureCount: report.failures.length,
      failures: report.failures,
      saved: out.saved ?? null,
      exported: out.exported ?? null,
    });
    return;
  }
  const rows: [string, string][] = [["log of", out.source]];
  const id = report.identity;
  if (id) {
    rows.push([
      "server",
      id.pinned
        ? `${id.serverFingerprint} (as pinned)`
        : `${id.serverFingerprint} (not pinned: check it, then pin it with --server-fingerprint ${id.serverFingerprint})`,
    ]);
    rows.push(["log key", id.verifierKey]);
  }
  const cp = report.checkpoint;
  if (cp) {
    rows.push(["checkpoint", `size ${cp.size}, root ${cp.rootHash}`]);
    if (cp.storeHead) {
      rows.push(["store head", `${cp.storeHead.lines} lines, ${cp.storeHead.head}`]);
    }
    if (cp.minCosignatures > 0 || cp.cosignatures.length > 0) {
      rows.push([
        "cosignatures",
        `${cp.cosignatures.length} verified (at least ${cp.minCosignatures} required)${cp.cosignatures.map((c) => `\n${c.name} at ${new Date(c.timestamp * 1000).toISOString()}`).join("")}`,
      ]);
    }
    const o = report.outcomes;
    rows.push([
      "entries",
      `${report.entries} read, ${report.verified} verified: ${o.completed} completed, ${o.aborted} aborted, ${o.failed} failed rounds`,
    ]);
    const k = report.sessions;
    if (k.completed + k.aborted > 0) {
      rows.push([
        "threshold",
        `${k.completed} completed, ${k.aborted} aborted key generations and refreshes (every certificate verified)`,
      ]);
    }
  }
  if (report.since) {
    const s = report.since;
    rows.push([
      "since",
      `size ${s.size}, root ${s.rootHash}${s.consistencyProof === "verified" ? ", consistency proof verified" : ""}`,
    ]);
  }
  for (const s of report.servers) {
    rows.push([
      "abort rate",
      `${percent(s.abortRate)} (${s.aborted} of ${s.rounds} rounds aborted) by server ${s.fingerprint}`,
    ]);
  }
  if (out.saved)
    rows.push(["saved", `the checkpoint, to ${out.saved} (give it to --since next time)`]);
  if (out.notSaved) rows.push(["not saved", `${out.notSaved}: the audit failed`]);
  if (out.exported) rows.push(["exported", out.exported]);
  rows.push([
    "result",
    report.ok
      ? "every check passed"
      : `FAILED: ${report.failures.length} failure${report.failures.length === 1 ? "" : "s"}`,
  ]);
  printTable(rows);
  if (report.contributors.length > 0) {
    process.stdout.write(
      "  contributors (rounds in the commit set or sessions held, aborts naming it, abort rate)\n",
    );
    for (const c of report.contributors) {
      process.stdout.write(
        `    ${c.id}  ${c.rounds} rounds  ${c.aborts} aborts  ${percent(c.abortRate)}\n`,
      );
    }
  }
  if (report.failures.length > 0) {
    const shown = report.failures.slice(0, 100);
    process.stdout.write("  failures\n");
    for (const f of shown) {
      process.stdout.write(
        `    ${f.index === undefined ? f.check : `entry ${f.index}`}: ${f.message}\n`,
      );
    }
    if (report.failures.length > shown.length) {
      process.stdout.write(
        `    … and ${report.failures.length - shown.length} more (--json lists them all)\n`,
      );
    }
  }
}
