/**
 * The `dkeygen` command tree. Thin: each command parses its options, calls into server/ or client/,
 * and prints. Exit status: 0 ok, 1 operational failure, 2 usage error.
 */
import { Command, CommanderError } from "commander";
import { DkeygenError, ErrorCodes } from "../errors.js";
import { registerContributor } from "./commands/contributor.js";
import { registerDemo } from "./commands/demo.js";
import { registerDerive } from "./commands/derive.js";
import { registerEnroll } from "./commands/enroll.js";
import { registerGenerate } from "./commands/generate.js";
import { registerKey } from "./commands/key.js";
import { registerOtp } from "./commands/otp.js";
import { registerRequester } from "./commands/requester.js";
import { registerServer } from "./commands/server.js";
import { registerSign } from "./commands/sign.js";
import { registerStatus } from "./commands/status.js";
import { registerTotp } from "./commands/totp.js";
import { reportError } from "./output.js";

export function buildProgram(): Command {
  const program = new Command("dkeygen")
    .description(
      "decentralised key generator: keys and one-time passwords that no single party chose",
    )
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerServer(program);
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
  registerDemo(program);
  const override = (command: Command) => {
    command.exitOverride();
    for (const sub of command.commands) override(sub);
  };
  override(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  const json = argv.includes("--json");
  try {
    await program.parseAsync(argv as string[], { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end this way too, successfully; commander has printed the rest.
      if (error.exitCode === 0) return 0;
      if (json)
        reportError(new DkeygenError(ErrorCodes.USAGE, error.message.replace(/^error: /, "")), {
          json,
        });
      return 2;
    }
    return reportError(error, { json });
  }
}
