/**
 * A rule the whole suite leans on (README, Development): a promise rejection nobody handles fails
 * the test run, even when every test passed and the rejection comes after its test ended. node:test
 * does it (it reports the unhandledRejection as a failure of the test file and exits 1); this test
 * proves it on the Node that runs the suite, so a Node that stopped doing it would be seen here and
 * not as leaks that pass unnoticed.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

const LEAKY = `import { test } from "node:test";
test("passes, but leaves a rejected promise nobody handles", () => {
  Promise.reject(new Error("left unhandled on purpose"));
});
test("passes, and a rejection nobody handles comes after it ended", () => {
  setTimeout(() => Promise.reject(new Error("left unhandled later")), 20);
});
test("keeps the file running past that", async () => {
  await new Promise((resolve) => setTimeout(resolve, 100));
});
`;
const CLEAN = `import { test } from "node:test";
test("passes", () => {});
test("handles its rejection", async () => {
  await Promise.reject(new Error("handled")).catch(() => {});
});
`;

/** `node --test file`, as its own run (not a subtest of this one): its exit code and output. */
function runTests(file: string): Promise<{ code: number; output: string }> {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--test", "--test-reporter=tap", file],
      { env, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, output: stdout + stderr });
      },
    );
  });
}

test("node --test fails a run that leaves a promise rejection unhandled, though its tests pass", async () => {
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-unhandled-"));
  try {
    const leaky = join(dir, "leaky.test.mjs");
    const clean = join(dir, "clean.test.mjs");
    await writeFile(leaky, LEAKY);
    await writeFile(clean, CLEAN);
    // The same run without the leak passes: what fails below is the rejection.
    const ok = await runTests(clean);
    assert.equal(ok.code, 0, ok.output);
    const failed = await runTests(leaky);
    assert.equal(failed.code, 1, failed.output);
    assert.match(failed.output, /^# fail [1-9]/m);
    assert.match(failed.output, /left unhandled on purpose/);
    assert.match(failed.output, /left unhandled later/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
