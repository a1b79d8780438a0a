#!/usr/bin/env node
/**
 * The `dkeygen` executable. Exit status: 0 ok, 1 operational failure or rejected code, 2 usage
 * error, 130 interrupted (src/cli/exit-status.ts). This is the one place that sets it.
 */
import { ExitStatus } from "./exit-status.js";
import { main } from "./program.js";
import { installSignalHandlers } from "./signals.js";

// A reader that went away (`dkeygen … | head -1`, EPIPE) is not an error of ours: the rest of the
// output is dropped quietly and the command ends as it would have, with no stack trace. Any other
// failure to write the output (a full disk, say) makes a successful command fail.
let lostOutput: string | undefined;
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") lostOutput ??= error.message;
  });
}
installSignalHandlers();
const status = await main(process.argv.slice(2));
if (lostOutput !== undefined && status === ExitStatus.OK) {
  process.stderr.write(`dkeygen: the output could not be written: ${lostOutput}\n`);
  process.exitCode = ExitStatus.FAILURE;
} else {
  process.exitCode = status;
}
