/**
 * The `dkeygen` command tree. Thin: each command parses its options, calls into server/ or client/,
 * and prints. Exit status: see exit-status.ts.
 */
import { Command, CommanderError } from "commander";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { registerAudit } from "./commands/audit.js";
import { registerAuditRecord } from "./commands/audit-record.js";
import { registerContributor } from "./commands/contributor.js";
import { registerDemo } from "./commands/demo.js";
import { registerDerive } from "./commands/derive.js";
import { registerDistributor } from "./commands/distributor.js";
import { registerEnroll } from "./commands/enroll.js";
import { registerGenerate } from "./commands/generate.js";
import { registerKey } from "./commands/key.js";
import { registerOtp } from "./commands/otp.js";
import { registerRequester } from "./commands/requester.js";
import { registerServer } from "./commands/server.js";
import { registerSign } from "./commands/sign.js";
import { registerStatus } from "./commands/status.js";
import { registerStore } from "./commands/store.js";
import { registerThreshold } from "./commands/threshold.js";
import { registerTotp } from "./commands/totp.js";
import { ExitStatus, Interrupted, PrintedFailure } from "./exit-status.js";
import { reportError } from "./output.js";
import { nameRequestFlags } from "./request-fields.js";

export function buildProgram(): Command {
  const program = new Command("dkeygen")
    .description(
      "decentralised key generator: keys and one-time passwords that no single party chose",
    )
    .version("0.1.0")
    // A command's options come before its subcommand's: `contributor --server WS` and
    // `contributor audit --server HTTP` each get their own.
    .enablePositionalOptions();
  registerServer(program);
  registerDistributor(program);
  registerEnroll(program);
  registerContributor(program);
  registerGenerate(program);
  registerStatus(program);
  registerDerive(program);
  registerRequester(program);
  registerOtp(program);
  registerTotp(program);
  registerKey(program);
  registerSign(program);
  registerThreshold(program);
  registerAudit(program);
  registerAuditRecord(program);
  registerStore(program);
  registerDemo(program);
  const override = (command: Command) => {
    // main prints a usage error, once, as one line (or the --json document).
    command.configureOutput({ outputError: () => {} });
    command.exitOverride((error) => {
      throw error.exitCode === 0 || error.code === "commander.help"
        ? error
        : commanderUsage(command, error);
    });
    for (const sub of command.commands) override(sub);
  };
  override(program);
  return program;
}

/** commander's complaint as one E_USAGE sentence that names the command's --help. */
function commanderUsage(command: Command, error: CommanderError): DkeygenError {
  const path: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) path.unshift(c.name());
  const message = error.message.replace(/^error: /, "").replace(/\s*\n\s*/g, " ");
  return new DkeygenError(ErrorCodes.USAGE, `${message} (see: ${path.join(" ")} --help)`, {
    cause: error,
  });
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  const json = argv.includes("--json");
  try {
    await program.parseAsync(argv as string[], { from: "user" });
    return ExitStatus.OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end this way, successfully; a command group without its subcommand
      // has printed its help to standard error.
      return error.exitCode === 0 ? ExitStatus.OK : ExitStatus.USAGE;
    }
    if (error instanceof Interrupted) return ExitStatus.INTERRUPTED;
    if (error instanceof PrintedFailure) {
      // The result document is out already; the reason goes to standard error only.
      return reportError(error.error, { json: false });
    }
    return reportError(nameRequestFlags(error), { json });
  }
}
