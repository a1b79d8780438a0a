/**
 * Signals and closed pipes, on real child processes: a reader that went away (`dkeygen … | head
 * -1`) ends the command quietly; Ctrl-C ends a one-shot command with 130; SIGTERM stops a running
 * server or contributor cleanly (exit 0, ports free, store lock released) and Ctrl-C does the same
 * with 130.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../helpers/ceremony.js";
import { CliProcess, runCli, serverArgs } from "../helpers/cli.js";
import { CLI } from "../helpers/paths.js";

test("a closed standard output (| head -1) ends the command quietly: no EPIPE stack trace, its own exit status", async () => {
  const child = spawn(
    process.execPath,
    [CLI, "derive", "rsa", "--secret", "ab".repeat(32), "--reveal-secret"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  // The reader goes away before the command writes anything.
  child.stdout.destroy();
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const status = await new Promise<number | null>((resolve) => child.on("close", resolve));
  assert.equal(stderr, "", "nothing on standard error");
  assert.equal(status, 0);
});

test("Ctrl-C ends a one-shot command with exit status 130", async () => {
  // A peer that accepts the connection and never answers: the command waits on it.
  const held: Socket[] = [];
  let connected!: () => void;
  const arrived = new Promise<void>((resolve) => {
    connected = resolve;
  });
  const peer = createServer((socket) => {
    held.push(socket);
    connected();
  });
  await new Promise<void>((resolve) => peer.listen(0, "127.0.0.1", resolve));
  const port = (peer.address() as { port: number }).port;
  const dir = await tempDir();
  try {
    const command = new CliProcess(
      [
        "status",
        "--server",
        `ws://127.0.0.1:${port}`,
        "--server-fingerprint",
        `SHA256:${"A".repeat(43)}`,
      ],
      { DKEYGEN_ADMIN_TOKEN: "A".repeat(43), DKEYGEN_HOME: dir.path },
    );
    await arrived;
    assert.equal(await command.stop("SIGINT"), 130);
    assert.equal(command.stderr, "");
  } finally {
    for (const socket of held) socket.destroy();
    peer.close();
    await dir.remove();
  }
});

test("Ctrl-C during the demo ends it with 130 and removes its data folder, which holds keys", async () => {
  const dir = await tempDir();
  try {
    const demo = new CliProcess(["demo"], { DKEYGEN_HOME: dir.path });
    const folder = await demo.waitFor(/data folder (\S+)/);
    const path = folder[1]!;
    assert.ok(existsSync(path), "the demo made its folder");
    assert.equal(await demo.stop("SIGINT"), 130);
    assert.equal(existsSync(path), false, `${path} is gone`);
  } finally {
    await dir.remove();
  }
});

/** Resolves true when nothing listens on `url`'s port any more (a connection is refused). */
async function portFree(url: string): Promise<boolean> {
  const { port } = new URL(url);
  const probe = createServer();
  return new Promise((resolve) => {
    probe.once("error", () => resolve(false));
    probe.listen(Number(port), "127.0.0.1", () => probe.close(() => resolve(true)));
  });
}

for (const [signal, status] of [
  ["SIGTERM", 0],
  ["SIGINT", 130],
] as const) {
  test(`${signal} stops a running server and its contributor cleanly: exit ${status}, ports free, store lock released`, async () => {
    const dir = await tempDir();
    const serverDir = join(dir.path, "server");
    const server = new CliProcess(serverArgs(serverDir));
    let contributor: CliProcess | undefined;
    try {
      const [, wsUrl] = await server.waitFor(/listening\s+(ws:\/\/\S+)/, 60_000);
      const [, httpUrl] = await server.waitFor(/distribution\s+(http:\/\/\S+)/);
      const token = JSON.parse((await runCli(["enroll", "--data-dir", serverDir, "--json"])).stdout)
        .token as string;
      contributor = new CliProcess(
        ["contributor", "--server", wsUrl!, "--data-dir", join(dir.path, "c1")],
        { DKEYGEN_ENROLL_TOKEN: token },
      );
      await contributor.waitFor(/enrolled and joined/, 60_000);
      assert.ok(existsSync(join(serverDir, "key_store.lock")), "a running server holds the lock");

      assert.equal(await contributor.stop(signal), status, contributor.stderr);
      assert.equal(await server.stop(signal), status, server.stderr);
      assert.doesNotMatch(server.stderr, /stopping failed|"level":50/);
      assert.equal(existsSync(join(serverDir, "key_store.lock")), false, "the lock is released");
      assert.ok(await portFree(wsUrl!), "the WebSocket port is free");
      assert.ok(await portFree(httpUrl!), "the HTTP port is free");
      // And the data folder opens again at once.
      const again = new CliProcess(serverArgs(serverDir));
      await again.waitFor(/listening\s+ws:\/\//, 60_000);
      assert.equal(await again.stop("SIGTERM"), 0);
    } finally {
      await contributor?.stop("SIGKILL");
      await server.stop("SIGKILL");
      await dir.remove();
    }
  });
}
