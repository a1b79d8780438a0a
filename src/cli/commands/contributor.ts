/**
 * `dkeygen contributor`: runs a contributor that answers the server's rounds (and witnesses its
 * transparency log) until interrupted. `contributor witness-key` prints its witness verifier key;
 * `contributor audit` re-checks what it witnessed against the log as served now.
 */
import { type Command, Option } from "commander";
import { Contributor } from "../../client/contributor.js";
import { auditContributor } from "../../client/contributor-audit.js";
import { loadOrCreateContributorState } from "../../client/contributor-state.js";
import { ENROLL_TOKEN_ENV, readEnrollmentToken } from "../../client/enrollment-token.js";
import { EntropyPool, entropyFromFile } from "../../client/entropy.js";
import { createHttpCall } from "../../client/http-call.js";
import { collectKeyboardEntropy } from "../../client/keyboard-entropy.js";
import { PinStore } from "../../client/pins.js";
import { ShareStore } from "../../client/share-store.js";
import { witnessIdentity } from "../../client/witness.js";
import { isFingerprint } from "../../crypto/fingerprint.js";
import { PHRASE_GENERATOR_NAMES } from "../../crypto/phrase-generators.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { Interrupted, PrintedFailure } from "../exit-status.js";
import { onUserPath } from "../file-errors.js";
import { caOption, dataDirOption } from "../options.js";
import { makeLogger, printJson, printTable } from "../output.js";
import { nextStopSignal } from "../signals.js";

interface ContributorFlags {
  server: string;
  dataDir?: string;
  entropy: string;
  tokenFile?: string;
  /** Refused: see the action. */
  token?: string | true;
  name?: string;
  serverFingerprint?: string;
  ca?: string;
  generator?: string;
  once?: boolean;
  logFormat?: string;
  logLevel?: string;
}

type EntropySpec = { kind: "os" } | { kind: "keyboard" } | { kind: "file"; path: string };

/** --entropy: os, keyboard, file:PATH, file:- or -; checked before anything is read or made. */
function parseEntropy(spec: string): EntropySpec {
  if (spec === "os" || spec === "keyboard") return { kind: spec };
  if (spec === "-" || spec.startsWith("file:")) {
    const path = spec === "-" ? "-" : spec.slice(5);
    if (!path)
      throw new DkeygenError(ErrorCodes.USAGE, "--entropy file: needs a path (or - for stdin).");
    return { kind: "file", path };
  }
  throw new DkeygenError(
    ErrorCodes.USAGE,
    `--entropy wants os, keyboard or file:PATH; got "${spec}".`,
  );
}

/** The user's randomness, by --entropy. */
async function userEntropy(spec: EntropySpec): Promise<{ bytes: Uint8Array; source: string }> {
  if (spec.kind === "os") return { bytes: new Uint8Array(0), source: "os" };
  if (spec.kind === "keyboard") {
    process.stderr.write(
      "Type at random until the bar is full (keys and their timing are used):\n",
    );
    return {
      bytes: await collectKeyboardEntropy({ input: process.stdin, output: process.stderr }),
      source: "keyboard",
    };
  }
  return {
    bytes: await onUserPath("--entropy", spec.path, "read", () => entropyFromFile(spec.path)),
    source: spec.path === "-" ? "stdin" : "file",
  };
}

export function registerContributor(program: Command): void {
  const contributor = program
    .command("contributor")
    // Its own options come before a subcommand (witness-key, audit), which have their own.
    .enablePositionalOptions()
    .description("run a contributor: answer every round with a signed, encrypted secret phrase")
    // Required, but checked in the action: commander would require it of the subcommands too.
    .option("--server <url>", "the key generation server, e.g. ws://127.0.0.1:7420 (required)")
    .option("--data-dir <dir>", "contributor data folder (default: $DKEYGEN_HOME/contributor)")
    .option("--entropy <source>", "user randomness: os, keyboard, file:PATH or - (stdin)", "os")
    .option(
      "--token-file <file>",
      `file holding the single-use enrollment token (first join only); or ${ENROLL_TOKEN_ENV}`,
    )
    // Kept only to refuse it with a useful message (a token in argv is visible to everyone).
    .addOption(new Option("--token [token]").hideHelp())
    .option("--name <name>", "a name to show in the server's logs")
    .option("--server-fingerprint <fp>", "pin the server's key in advance (SHA256:...)")
    .option("--ca <file>", "wss:// only: trust only this CA's PEM certificate(s) for the server")
    .option(
      "--generator <name>",
      `secret phrase generator for a new data folder: ${PHRASE_GENERATOR_NAMES.join(", ")}`,
    )
    .option("--log-format <format>", "json or pretty (default: pretty on a terminal)")
    .option("--log-level <level>", "debug, info, warn or error", "info")
    .action(async (flags: ContributorFlags) => {
      if (flags.server === undefined) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          "--server is required: the key generation server, e.g. ws://127.0.0.1:7420.",
        );
      }
      if (flags.token !== undefined) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          `--token is not accepted: a command line is visible to every user of the machine (ps). Put the token in a file and pass --token-file FILE, or set ${ENROLL_TOKEN_ENV}.`,
        );
      }
      if (flags.serverFingerprint !== undefined && !isFingerprint(flags.serverFingerprint)) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          "--server-fingerprint wants SHA256: and 43 base64 characters.",
        );
      }
      if (!/^wss?:\/\//.test(flags.server)) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          `--server wants a ws:// or wss:// URL; got "${flags.server}".`,
        );
      }
      if (flags.generator !== undefined && !PHRASE_GENERATOR_NAMES.includes(flags.generator)) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          `--generator wants one of ${PHRASE_GENERATOR_NAMES.join(", ")}; got "${flags.generator}".`,
        );
      }
      const entropySpec = parseEntropy(flags.entropy);
      const logger = makeLogger(flags);
      const ca = await onUserPath("--ca", flags.ca ?? "", "read", () =>
        caOption(flags.ca, flags.server),
      );
      const token = await onUserPath("--token-file", flags.tokenFile ?? "", "read", () =>
        readEnrollmentToken({
          ...(flags.tokenFile === undefined ? {} : { file: flags.tokenFile }),
          ...(process.env[ENROLL_TOKEN_ENV] === undefined
            ? {}
            : { env: process.env[ENROLL_TOKEN_ENV] }),
        }),
      );
      const dataDir = dataDirOption(flags.dataDir, "contributor");
      const state = await onUserPath("--data-dir", dataDir, "folder", () =>
        loadOrCreateContributorState(dataDir, {
          ...(flags.generator === undefined ? {} : { generator: flags.generator }),
        }),
      );
      const { bytes, source } = await userEntropy(entropySpec);
      const entropy = new EntropyPool(bytes, source);
      bytes.fill(0);
      process.stdout.write("dkeygen contributor\n");
      printTable([
        ["id", state.contributorId],
        ["generator", `${state.generator.name} (${state.generator.standard})`],
        ["entropy", source === "os" ? "OS CSPRNG" : `${source}, mixed with the OS CSPRNG`],
        ["server", flags.server],
        ["data folder", dataDir],
      ]);
      const contributor = new Contributor({
        serverUrl: flags.server,
        state,
        entropy,
        pins: new PinStore(dataDir),
        logger,
        ...(flags.serverFingerprint === undefined
          ? {}
          : { serverFingerprint: flags.serverFingerprint }),
        ...(token === undefined ? {} : { token }),
        ...(ca === undefined ? {} : { ca }),
        ...(flags.name === undefined ? {} : { name: flags.name }),
      });
      const stopping = nextStopSignal();
      try {
        // The first join's failure also ends `done` below, which reports it.
        contributor.start().catch(() => {});
        const ended = await Promise.race([
          contributor.done.then((fatal) => ({ fatal })),
          stopping.signal.then((signal) => ({ signal })),
        ]);
        if ("fatal" in ended) {
          if (ended.fatal) throw ended.fatal;
          return;
        }
        await contributor.stop();
        if (ended.signal === "SIGINT") throw new Interrupted();
      } finally {
        stopping.release();
      }
    });
  registerWitnessKey(contributor);
  registerContributorAudit(contributor);
  registerContributorShares(contributor);
}

/** `dkeygen contributor shares`: the threshold keys this contributor holds a share of. */
function registerContributorShares(contributor: Command): void {
  contributor
    .command("shares")
    .description("list the threshold keys this contributor holds a share of (never the shares)")
    .option("--data-dir <dir>", "contributor data folder (default: $DKEYGEN_HOME/contributor)")
    .option("--json", "print the list as JSON")
    .action(async (flags: { dataDir?: string; json?: boolean }) => {
      const dataDir = dataDirOption(flags.dataDir, "contributor");
      const state = await onUserPath("--data-dir", dataDir, "folder", () =>
        loadOrCreateContributorState(dataDir),
      );
      const shares = await new ShareStore(dataDir, state.privateKey).list();
      if (flags.json) {
        printJson(shares);
        return;
      }
      if (shares.length === 0) {
        process.stdout.write("No threshold shares yet (dkeygen threshold keygen makes some).\n");
        return;
      }
      for (const s of shares) {
        printTable([
          ["key", s.keyId],
          ["suite", s.suite],
          ["threshold", `${s.t} of ${s.n} (this contributor is holder ${s.index})`],
          ["group public key", s.groupPublicKey],
          ...(s.address === undefined
            ? []
            : ([["address (P2TR)", s.address]] as [string, string][])),
          ["created", s.createdAt],
        ]);
        process.stdout.write("\n");
      }
    });
}

/** `dkeygen contributor witness-key`: the contributor's witness verifier key (cosignature/v1). */
function registerWitnessKey(contributor: Command): void {
  contributor
    .command("witness-key")
    .description("print this contributor's witness verifier key (what cosignature checkers trust)")
    .option("--data-dir <dir>", "contributor data folder (default: $DKEYGEN_HOME/contributor)")
    .option("--json", "print {name, verifierKey, contributorId} as JSON")
    .action(async (flags: { dataDir?: string; json?: boolean }) => {
      const dataDir = dataDirOption(flags.dataDir, "contributor");
      const state = await onUserPath("--data-dir", dataDir, "folder", () =>
        loadOrCreateContributorState(dataDir),
      );
      const { name, verifierKey } = witnessIdentity(state);
      if (flags.json) printJson({ name, verifierKey, contributorId: state.contributorId });
      else process.stdout.write(`${verifierKey}\n`);
    });
}

/** `dkeygen contributor audit`: re-checks every recorded receipt against the served log. */
function registerContributorAudit(contributor: Command): void {
  contributor
    .command("audit")
    .description(
      "re-check what this contributor witnessed: the log extends the checkpoint it cosigned and still holds each round it has a receipt for",
    )
    .requiredOption("--server <url>", "the distribution server's URL (http:// or https://)")
    .option("--data-dir <dir>", "contributor data folder (default: $DKEYGEN_HOME/contributor)")
    .option("--ca <file>", "https:// only: trust only this CA's PEM certificate(s) for the server")
    .option("--json", "print the report as JSON")
    .action(async (flags: { server: string; dataDir?: string; ca?: string; json?: boolean }) => {
      if (!/^https?:\/\//.test(flags.server)) {
        throw new DkeygenError(
          ErrorCodes.USAGE,
          `--server wants an http:// or https:// URL; got "${flags.server}".`,
        );
      }
      const ca = await onUserPath("--ca", flags.ca ?? "", "read", () =>
        caOption(flags.ca, flags.server),
      );
      const dataDir = dataDirOption(flags.dataDir, "contributor");
      const report = await auditContributor(
        dataDir,
        flags.server,
        createHttpCall({
          maxResponseBytes: 4 * 1024 * 1024,
          ...(ca === undefined ? {} : { ca }),
        }),
      );
      if (flags.json) {
        printJson(report);
      } else {
        printTable([
          ["log", report.origin],
          ["served checkpoint", `size ${report.checkpoint.size}`],
          ["cosigned checkpoint", `size ${report.witnessed.size}`],
          ["receipts", String(report.receipts)],
          [
            "rounds answered",
            `${report.answered.rounds} (in the log ${report.answered.found}, too recent to ask ${report.answered.pending}${report.answered.excluded ? `, logged without our commitment ${report.answered.excluded}` : ""})`,
          ],
          ["result", report.ok ? "ok" : `${report.failures.length} failure(s)`],
        ]);
        for (const f of report.failures) {
          const at =
            f.roundId === undefined
              ? ""
              : `round ${f.roundId}${f.index === undefined ? "" : ` (entry ${f.index})`}: `;
          process.stdout.write(`FAIL ${at}${f.message}\n`);
        }
      }
      if (!report.ok) {
        throw new PrintedFailure(
          new DkeygenError(
            ErrorCodes.BAD_SIGNATURE,
            `The log does not hold what this contributor witnessed (${report.failures.length} failure(s)).`,
          ),
        );
      }
    });
}
