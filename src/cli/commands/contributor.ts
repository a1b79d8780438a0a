/** `dkeygen contributor`: runs a contributor that answers the server's rounds until interrupted. */
import type { Command } from "commander";
import { Contributor } from "../../client/contributor.js";
import { loadOrCreateContributorState } from "../../client/contributor-state.js";
import { EntropyPool, entropyFromFile } from "../../client/entropy.js";
import { collectKeyboardEntropy } from "../../client/keyboard-entropy.js";
import { PinStore } from "../../client/pins.js";
import { isFingerprint } from "../../crypto/fingerprint.js";
import { PHRASE_GENERATOR_NAMES } from "../../crypto/phrase-generators.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { dataDirOption } from "../options.js";
import { makeLogger, printTable } from "../output.js";

interface ContributorFlags {
  server: string;
  dataDir?: string;
  entropy: string;
  token?: string;
  name?: string;
  serverFingerprint?: string;
  generator?: string;
  once?: boolean;
  logFormat?: string;
  logLevel?: string;
}

/** The user's randomness, by --entropy: os, keyboard, file:PATH, file:- or -. */
async function userEntropy(spec: string): Promise<{ bytes: Uint8Array; source: string }> {
  if (spec === "os") return { bytes: new Uint8Array(0), source: "os" };
  if (spec === "keyboard") {
    process.stderr.write(
      "Type at random until the bar is full (keys and their timing are used):\n",
    );
    return {
      bytes: await collectKeyboardEntropy({ input: process.stdin, output: process.stderr }),
      source: "keyboard",
    };
  }
  if (spec === "-" || spec.startsWith("file:")) {
    const path = spec === "-" ? "-" : spec.slice(5);
    if (!path)
      throw new DkeygenError(ErrorCodes.USAGE, "--entropy file: needs a path (or - for stdin).");
    return { bytes: await entropyFromFile(path), source: path === "-" ? "stdin" : "file" };
  }
  throw new DkeygenError(
    ErrorCodes.USAGE,
    `--entropy wants os, keyboard or file:PATH; got "${spec}".`,
  );
}

export function registerContributor(program: Command): void {
  program
    .command("contributor")
    .description("run a contributor: answer every round with a signed, encrypted secret phrase")
    .requiredOption("--server <url>", "the key generation server, e.g. ws://127.0.0.1:7420")
    .option("--data-dir <dir>", "contributor data folder (default: $DKEYGEN_HOME/contributor)")
    .option("--entropy <source>", "user randomness: os, keyboard, file:PATH or - (stdin)", "os")
    .option(
      "--token <token>",
      "single-use enrollment token (first join only); or DKEYGEN_ENROLL_TOKEN",
    )
    .option("--name <name>", "a name to show in the server's logs")
    .option("--server-fingerprint <fp>", "pin the server's key in advance (SHA256:...)")
    .option(
      "--generator <name>",
      `secret phrase generator for a new data folder: ${PHRASE_GENERATOR_NAMES.join(", ")}`,
    )
    .option("--log-format <format>", "json or pretty (default: pretty on a terminal)")
    .option("--log-level <level>", "debug, info, warn or error", "info")
    .action(async (flags: ContributorFlags) => {
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
      const dataDir = dataDirOption(flags.dataDir, "contributor");
      const logger = makeLogger(flags);
      const state = await loadOrCreateContributorState(dataDir, {
        ...(flags.generator === undefined ? {} : { generator: flags.generator }),
      });
      const { bytes, source } = await userEntropy(flags.entropy);
      const entropy = new EntropyPool(bytes, source);
      bytes.fill(0);
      const token = flags.token ?? process.env.DKEYGEN_ENROLL_TOKEN;
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
        ...(flags.name === undefined ? {} : { name: flags.name }),
      });
      const stop = () => void contributor.stop();
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      // The first join's failure also ends `done` below, which reports it.
      contributor.start().catch(() => {});
      const fatal = await contributor.done;
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      if (fatal) throw fatal;
    });
}
