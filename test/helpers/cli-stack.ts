/**
 * A whole dkeygen installation through the real CLI, for tests of what users run: a server
 * process (both listeners on loopback port 0), two enrolled contributor processes (or none until
 * `joinContributors()`), and a requesting client made with `requester init`, registered with
 * `requester add` and logged in.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "./ceremony.js";
import { CliProcess, runCli, serverArgs } from "./cli.js";

export interface CliStack {
  dir: string;
  serverDir: string;
  requesterDir: string;
  server: CliProcess;
  contributors: CliProcess[];
  wsUrl: string;
  httpUrl: string;
  /** Makes, registers and logs in a requesting client named `name` in `dataDir`. */
  addRequester(name: string, dataDir: string): Promise<void>;
  /** Enrolls two contributor processes and waits until they have joined (once). */
  joinContributors(): Promise<void>;
  stop(): Promise<void>;
}

export async function startCliStack(
  serverExtra: readonly string[] = [],
  options: { contributors?: boolean } = {},
): Promise<CliStack> {
  const temp = await tempDir();
  const serverDir = join(temp.path, "server");
  const server = new CliProcess(serverArgs(serverDir, serverExtra));
  const contributors: CliProcess[] = [];
  const stop = async () => {
    for (const c of contributors) await c.stop();
    await server.stop();
    await temp.remove();
  };
  try {
    const [, wsUrl] = await server.waitFor(/listening\s+(ws:\/\/\S+)/, 60_000);
    const [, httpUrl] = await server.waitFor(/distribution\s+(http:\/\/\S+)/);
    const joinContributors = async () => {
      if (contributors.length > 0) return;
      for (const name of ["c1", "c2"]) {
        const enroll = await runCli(["enroll", "--data-dir", serverDir, "--json"]);
        const c = new CliProcess(
          ["contributor", "--server", wsUrl!, "--data-dir", join(temp.path, name)],
          { DKEYGEN_ENROLL_TOKEN: JSON.parse(enroll.stdout).token as string },
        );
        contributors.push(c);
        await c.waitFor(/enrolled and joined/, 60_000);
      }
    };
    if (options.contributors !== false) await joinContributors();
    const addRequester = async (name: string, dataDir: string) => {
      const init = await runCli(["requester", "init", "--data-dir", dataDir, "--server", httpUrl!]);
      if (init.status !== 0) throw new Error(`requester init: ${init.stderr}`);
      const add = await runCli([
        "requester",
        "add",
        name,
        "--public-key",
        join(dataDir, "requester.pub.pem"),
        "--data-dir",
        serverDir,
        "--json",
      ]);
      if (add.status !== 0) throw new Error(`requester add: ${add.stderr}`);
      const file = join(temp.path, `${name}.credential`);
      await writeFile(file, `${JSON.parse(add.stdout).credential}\n`, { mode: 0o600 });
      const login = await runCli([
        "requester",
        "login",
        "--data-dir",
        dataDir,
        "--credential-file",
        file,
      ]);
      if (login.status !== 0) throw new Error(`requester login: ${login.stderr}`);
    };
    const requesterDir = join(temp.path, "webapp");
    await addRequester("webapp", requesterDir);
    return {
      dir: temp.path,
      serverDir,
      requesterDir,
      server,
      contributors,
      wsUrl: wsUrl!,
      httpUrl: httpUrl!,
      addRequester,
      joinContributors,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
