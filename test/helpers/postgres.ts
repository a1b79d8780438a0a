/**
 * A throwaway PostgreSQL cluster for tests: `initdb` and `pg_ctl start` in a temporary folder, on
 * a free port on 127.0.0.1 (its unix socket in that folder too), torn down by `stop()` (`pg_ctl
 * stop -m immediate`, then the folder removed). Start one per test file (a start costs 1-2 s) and
 * give each test its own database (`createDatabase`).
 *
 * The binaries come from PATH, else Debian's /usr/lib/postgresql/<version>/bin. When neither has
 * them the start fails, saying to install Debian's `postgresql` (the tests never skip: CI installs
 * it, see .ci/run). initdb refuses to run as root, so as root the commands run as the `postgres`
 * user (runuser) in a folder given to it. Tests connect over TCP as the role `dkeygen` with a
 * password (scram-sha-256), the way a server would; the test's own set-up uses the superuser over
 * the unix socket.
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { Client } from "pg";

export interface PostgresCluster {
  port: number;
  /** The store role's password (for tests that look for it in messages). */
  password: string;
  /** A new, empty database owned by the store role; resolves to its URL (with the password). */
  createDatabase(): Promise<string>;
  /** Runs `sql` as the superuser in database `database` (default: postgres). */
  admin<T = Record<string, unknown>>(
    sql: string,
    values?: unknown[],
    database?: string,
  ): Promise<T[]>;
  /**
   * Stops the cluster's server (`pg_ctl stop -m fast`: sessions ended, as in a restart) and keeps
   * its data; `resume()` starts it again on the same port. Asynchronous, so a test's own load
   * keeps running meanwhile.
   */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

const INSTALL_HINT =
  "PostgreSQL's initdb and pg_ctl were found neither on PATH nor in /usr/lib/postgresql/*/bin. " +
  "These tests run a throwaway PostgreSQL cluster: install Debian's postgresql package " +
  "(apt-get install postgresql), as .ci/run does.";

/** The folder holding initdb and pg_ctl: PATH first, else the newest Debian install. */
export function findPostgresBin(): string {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl"))) return dir;
  }
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, "bin", "initdb")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error(INSTALL_HINT);
  return join(root, versions[0]!, "bin");
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

const isRoot = process.getuid?.() === 0;

/** Runs a PostgreSQL program, as the postgres user when we are root. */
function runPg(bin: string, program: string, args: string[]): void {
  const command = isRoot ? "runuser" : join(bin, program);
  const argv = isRoot ? ["-u", "postgres", "--", join(bin, program), ...args] : args;
  const result = spawnSync(command, argv, { encoding: "utf8", timeout: 60_000 });
  if (result.status !== 0) {
    throw new Error(
      `${program} failed (${result.status ?? result.signal}): ${result.stderr || result.stdout}`,
    );
  }
}

/** runPg without blocking the event loop. */
function runPgAsync(bin: string, program: string, args: string[]): Promise<void> {
  const command = isRoot ? "runuser" : join(bin, program);
  const argv = isRoot ? ["-u", "postgres", "--", join(bin, program), ...args] : args;
  return new Promise((resolve, reject) => {
    execFile(command, argv, { encoding: "utf8", timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${program} failed: ${stderr || stdout || error.message}`));
      else resolve();
    });
  });
}

let databases = 0;

export async function startPostgres(): Promise<PostgresCluster> {
  const bin = findPostgresBin();
  const dir = mkdtempSync(join(tmpdir(), "dkeygen-pg-"));
  const data = join(dir, "data");
  if (isRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
  }
  const password = randomBytes(18).toString("base64url");
  const pwfile = join(dir, "superuser.pw");
  writeFileSync(pwfile, `${randomBytes(18).toString("base64url")}\n`, { mode: 0o600 });
  if (isRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    chownSync(pwfile, uid, 0);
  }
  const port = await freePort();
  const startArgs = [
    "-D",
    data,
    "-l",
    join(dir, "server.log"),
    "-w",
    "-t",
    "60",
    "-o",
    // Throwaway data: no fsync (durability here is PostgreSQL's, not under test).
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`,
    "start",
  ];
  let started = false;
  const stopNow = () => {
    if (started) {
      started = false;
      try {
        runPg(bin, "pg_ctl", ["-D", data, "stop", "-m", "immediate", "-w"]);
      } catch {
        // Already gone.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // A test file that dies before its after() still leaves no server running.
  const onExit = () => stopNow();
  process.once("exit", onExit);
  try {
    runPg(bin, "initdb", [
      "-D",
      data,
      "-U",
      "postgres",
      "--pwfile",
      pwfile,
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "--encoding=UTF8",
      "--locale=C",
      "--no-sync",
    ]);
    runPg(bin, "pg_ctl", startArgs);
    started = true;
  } catch (error) {
    process.removeListener("exit", onExit);
    stopNow();
    throw error;
  }

  async function admin<T>(sql: string, values: unknown[] = [], database = "postgres") {
    const client = new Client({ host: dir, port, user: "postgres", database });
    await client.connect();
    try {
      return (await client.query(sql, values)).rows as T[];
    } finally {
      await client.end();
    }
  }
  await admin(`CREATE ROLE dkeygen LOGIN PASSWORD '${password}'`);

  return {
    port,
    password,
    admin,
    async createDatabase() {
      const name = `t${++databases}_${randomBytes(4).toString("hex")}`;
      await admin(`CREATE DATABASE ${name} OWNER dkeygen`);
      return `postgres://dkeygen:${password}@127.0.0.1:${port}/${name}`;
    },
    async pause() {
      await runPgAsync(bin, "pg_ctl", ["-D", data, "stop", "-m", "fast", "-w"]);
      started = false;
    },
    async resume() {
      await runPgAsync(bin, "pg_ctl", startArgs);
      started = true;
    },
    async stop() {
      process.removeListener("exit", onExit);
      stopNow();
    },
  };
}
