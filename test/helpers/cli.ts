/** Runs the real `dkeygen` CLI (the compiled bin) as child processes. */
import { type ChildProcess, spawn } from "node:child_process";
import { CLI } from "./paths.js";

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion. */
export function runCli(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`dkeygen ${args.join(" ")} timed out\nstdout: ${stdout}\nstderr: ${stderr}`),
      );
    }, options.timeoutMs ?? 30_000);
    child.on("error", reject);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** A long-running command (server, contributor) with its output collected as it comes. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exited: Promise<number | null>;

  constructor(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout!.on("data", (d) => {
      this.stdout += d;
    });
    this.child.stderr!.on("data", (d) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) => this.child.on("close", (status) => resolve(status)));
  }

  /** Resolves with the first match of `pattern` in stdout+stderr. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = (this.stdout + this.stderr).match(pattern);
      if (match) return match;
      if (this.child.exitCode !== null) {
        throw new Error(
          `process exited (${this.child.exitCode}) before ${pattern}\n${this.stdout}\n${this.stderr}`,
        );
      }
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${pattern}\n${this.stdout}\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    const status = await this.exited;
    clearTimeout(timer);
    return status;
  }
}

/**
 * The arguments of a `dkeygen server` for tests: `dataDir`, both listeners on loopback port 0 (or
 * the HTTP one off), no OTP pool, JSON logs, then `extra`.
 */
export function serverArgs(
  dataDir: string,
  extra: readonly string[] = [],
  options: { http?: boolean } = {},
): string[] {
  return [
    "server",
    "--data-dir",
    dataDir,
    "--listen",
    "127.0.0.1:0",
    "--http-listen",
    options.http === false ? "off" : "127.0.0.1:0",
    "--otp-pool",
    "0",
    "--log-format",
    "json",
    ...extra,
  ];
}

/**
 * Runs many command lines through the CLI's `main()` (the function the executable's exit status
 * comes from) in one child process, one after another, with its standard output and error
 * captured per command line. For tables of quick refusals (usage errors), where a whole Node
 * start per row would cost a second each; rows that reach real work get `timeoutMs` each.
 */
export function runCliBatch(
  argvs: readonly (readonly string[])[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult[]> {
  const program = CLI.replace(/main\.js$/, "program.js");
  const script = `
    const { main } = await import(${JSON.stringify(program)});
    const write = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
    const results = [];
    for (const argv of JSON.parse(process.argv[1])) {
      let stdout = "", stderr = "";
      process.stdout.write = (chunk) => { stdout += chunk; return true; };
      process.stderr.write = (chunk) => { stderr += chunk; return true; };
      let timer;
      const status = await Promise.race([
        main(argv),
        new Promise((resolve) => { timer = setTimeout(() => resolve(null), ${options.timeoutMs ?? 10_000}); }),
      ]);
      clearTimeout(timer);
      process.stdout.write = write.out;
      process.stderr.write = write.err;
      results.push({ status, stdout, stderr });
    }
    write.out(JSON.stringify(results));
    process.exit(0);
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--input-type=module", "-e", script, JSON.stringify(argvs)],
      { env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (status) => {
      try {
        resolve(JSON.parse(stdout) as CliResult[]);
      } catch {
        reject(new Error(`the batch ended (${status}) without results\n${stdout}\n${stderr}`));
      }
    });
  });
}
