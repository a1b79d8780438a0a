/**
 * `dkeygen status`: asks the running server, over an authenticated admin session, what it is
 * doing — contributors connected and enrolled, rounds running — and where its key store stands
 * (for the key_store file, the durable line count and chain head that the head file anchors).
 */
import type { Command } from "commander";
import { printJson, printTable } from "../output.js";
import { type AdminFlags, connectAdmin, withAdminOptions } from "./generate.js";

interface StatusFlags extends AdminFlags {
  json?: boolean;
}

export function registerStatus(program: Command): void {
  withAdminOptions(
    program
      .command("status")
      .description("show the running server's contributors, rounds and key store head"),
  )
    .option("--json", "print the status as JSON")
    .action(async (flags: StatusFlags) => {
      const admin = await connectAdmin(flags);
      try {
        const status = await admin.status();
        if (flags.json) {
          printJson({ fingerprint: admin.fingerprint, ...status });
          return;
        }
        const { store } = status;
        printTable([
          ["fingerprint", admin.fingerprint],
          ["contributors", `${status.contributors.length} connected, ${status.enrolled} enrolled`],
          ["rounds", `${status.roundsRunning} running`],
          [
            "key store",
            store.lines === undefined
              ? store.kind
              : `${store.kind}, ${store.lines} lines, head ${store.head}`,
          ],
        ]);
        for (const c of status.contributors) {
          process.stdout.write(`    ${c.id}${c.name === undefined ? "" : `  ${c.name}`}\n`);
        }
      } finally {
        admin.close();
      }
    });
}
