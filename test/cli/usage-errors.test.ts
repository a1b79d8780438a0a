/**
 * Usage errors, table-driven over the whole command tree: every option (and argument) that takes
 * a value has a row here, read from the commander tree itself, so a new option without a row
 * fails the first test. Each bad value makes the real CLI exit 2, print one line on standard error
 * that names the flag, print with --json the `{ok: false, error: {code: "E_USAGE"}}` document,
 * and do so before anything is read or made (no data folder appears).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Command } from "commander";
import { buildProgram } from "../../src/cli/program.js";
import { tempDir } from "../helpers/ceremony.js";
import { type CliResult, runCli, runCliBatch } from "../helpers/cli.js";

/** Any value is accepted when the command line is read: a path or a free text. */
const FREE = null;

/**
 * Checked by the same code as this option's row in `command`, which runs; this command's own
 * row for the same group (e.g. its --server) proves it calls that code, before any I/O.
 */
const same = (command: string) => ({ same: command });

/**
 * A row: the bad value (appended as `--flag value` to the command's base arguments), or the
 * whole argument list after the command's name when the mistake needs more than one value, or
 * FREE with the reason in a comment, or `same(command)`.
 */
type Row = string | { argv: string[]; names?: string } | { same: string } | typeof FREE;

interface Table {
  /** Arguments after the command's path that make a command line that would run. */
  base: string[];
  rows: Record<string, Row>;
}

const HEX64 = "ab".repeat(32);
const ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
const WS = "ws://127.0.0.1:9";
const HTTP = "http://127.0.0.1:9";

let dir: Awaited<ReturnType<typeof tempDir>>;
let D: (name: string) => string;

before(async () => {
  dir = await tempDir();
  D = (name) => join(dir.path, name);
});
after(async () => dir?.remove());

/** The purpose options of derive: each with a purpose that takes it. */
function purposeRows(base: (purpose: string) => string[]): Record<string, Row> {
  const with_ = (purpose: string, flag: string, value: string) => ({
    argv: [...base(purpose), flag, value],
  });
  return {
    "<purpose>": { argv: base("foo"), names: "foo" },
    "--digits": with_("otp", "--digits", "5"),
    "--algorithm": with_("totp", "--algorithm", "MD5"),
    "--period": with_("totp", "--period", "0"),
    "--counter": with_("hotp", "--counter", "x"),
    "--issuer": with_("totp", "--issuer", "a:b"),
    "--account": with_("totp", "--account", "a:b"),
    "--bits": with_("rsa", "--bits", "1024"),
    "--curve": with_("nonce", "--curve", "ed25519"),
    "--words": with_("wallet", "--words", "13"),
    "--accounts": with_("wallet", "--accounts", "0"),
    "--indexes": with_("wallet", "--indexes", "0"),
    "--m": with_("multisig", "--m", "9"),
    "--n": with_("multisig", "--n", "99"),
    "--param": with_("otp", "--param", "digits"),
    "--passphrase-file": FREE, // a file: test/cli/file-errors.test.ts
  };
}

/**
 * Where `requester add/remove/list` keep registrations: a store URL without a database is refused
 * (its password not shown), and --store-key-file without a store URL.
 */
const adminStoreRows: Record<string, Row> = {
  "--data-dir": FREE,
  "--store": "postgres://u:secret@127.0.0.1:9",
  "--store-key-file": "/any/store.key", // refused without --store
};

/**
 * The options every requesting-client command shares: --server runs on each, --ca (checked by the
 * same function) on `otp request`.
 */
const requesterRows: Record<string, Row> = {
  "--data-dir": FREE, // a folder: file-errors.test.ts
  "--server": "notaurl",
  "--ca": same("otp request"),
};

/** The options every admin command shares: --server runs on each, the rest on `status`. */
const adminRows: Record<string, Row> = {
  "--data-dir": FREE,
  "--server": "notaurl",
  "--admin-token-file": FREE,
  "--server-fingerprint": same("status"),
  "--ca": same("status"),
};

function tables(): Record<string, Table> {
  const req = (...rest: string[]) => ["--data-dir", D("requester"), "--server", HTTP, ...rest];
  return {
    server: {
      base: ["--data-dir", D("server")],
      rows: {
        "--data-dir": FREE,
        "--listen": "7420",
        "--quorum": "1",
        "--round-timeout": "soon",
        "--commit-timeout": "soon",
        "--reveal-timeout": "soon",
        "--max-participants": "0",
        "--min-cosignatures": "x",
        "--store": "notaurl", // also mysql://, no host, no database: store/postgres-store.test.ts
        "--store-key-file": FREE,
        "--store-head": FREE,
        "--retain-used": "a while",
        "--http-listen": "nohost",
        "--otp-pool": "many",
        "--otp-digits": "5",
        "--otp-ttl": "5 minutes",
        "--otp-wait": "x",
        "--max-failures": "0",
        "--lockout": "x",
        "--rate-limit-address": "many",
        "--rate-limit-credential": "many",
        "--delivery-key-ttl": "x",
        "--tls-cert": "/any/cert.pem", // without --tls-key
        "--tls-key": "/any/key.pem", // without --tls-cert
        "--enrollments-at-once": "x",
        "--enrollments-per-requester": "x",
        "--otp-per-minute": "x",
        "--log-format": "xml",
        "--log-level": "verbose",
        "--hotp-window": "x",
        "--hotp-resync-window": "x",
      },
    },
    distributor: {
      base: ["--store", "postgres://dkeygen@127.0.0.1:9/dkeygen", "--data-dir", D("server")],
      rows: {
        "--store": "mysql://u:secret@db/keys", // the key_store file or another database: refused
        "--data-dir": FREE,
        "--store-key-file": "/any/store.key", // beside --data-dir: both name the store key
        "--http-listen": "off", // a distributor is its HTTP listener
        "--otp-ttl": "5 minutes",
        "--otp-wait": "x",
        "--max-failures": "0",
        "--lockout": "x",
        "--rate-limit-address": "many",
        "--rate-limit-credential": "many",
        "--delivery-key-ttl": "x",
        "--tls-cert": "/any/cert.pem", // without --tls-key
        "--tls-key": "/any/key.pem", // without --tls-cert
        "--otp-per-minute": "x",
        "--hotp-window": "101",
        "--hotp-resync-window": "x",
        "--log-format": "xml",
        "--log-level": "verbose",
      },
    },
    enroll: {
      base: ["--data-dir", D("server")],
      rows: { "--data-dir": FREE, "--name": "-bad name", "--ttl": "forever", "--out": FREE },
    },
    contributor: {
      base: ["--server", WS, "--data-dir", D("contributor")],
      rows: {
        "--server": "notaurl",
        "--data-dir": FREE,
        "--entropy": "dice",
        "--token-file": FREE,
        "--token": "abc", // refused: argv is visible to everyone
        "--name": FREE, // shown in the server's logs, which print it safely
        "--server-fingerprint": "SHA256:short",
        "--ca": "/any/ca.pem", // a CA for a plain ws:// server
        "--generator": "nope",
        "--log-format": "xml",
        "--log-level": "verbose",
      },
    },
    "contributor witness-key": {
      base: ["--data-dir", D("contributor")],
      rows: { "--data-dir": FREE }, // read (or made) to load the identity key
    },
    "contributor shares": {
      base: ["--data-dir", D("contributor")],
      rows: { "--data-dir": FREE }, // read (or made) to load the identity key
    },
    "threshold keygen": {
      base: ["--suite", "ed25519", "--t", "2", "--n", "3", "--data-dir", D("server")],
      rows: {
        ...adminRows,
        "--suite": "secp256k1",
        "--t": "1",
        "--n": { argv: ["--suite", "ed25519", "--t", "2", "--n", "65", "--data-dir", D("server")] },
        "--for": "bad name!",
      },
    },
    "threshold refresh": {
      base: ["--key", ULID, "--data-dir", D("server")],
      rows: { ...adminRows, "--key": "not-a-key" },
    },
    "threshold recover": {
      base: ["--key", ULID, "--data-dir", D("server")],
      rows: { ...adminRows, "--key": "not-a-key" },
    },
    "threshold sign": {
      base: ["--key", ULID, "--message-file", D("message.bin"), "--data-dir", D("server")],
      rows: {
        ...adminRows,
        "--key": "not-a-key",
        "--message-file": FREE, // read after the checks: threshold-cli.test.ts
      },
    },
    "contributor audit": {
      base: ["--server", HTTP, "--data-dir", D("contributor")],
      rows: {
        "--server": "notaurl",
        "--data-dir": FREE, // read after the checks: witness.test.ts
        "--ca": "/any/ca.pem", // a CA for a plain http:// server
      },
    },
    generate: {
      base: ["otp", "--data-dir", D("server")],
      rows: {
        ...adminRows,
        // The same check as derive's (checkPurpose); <purpose> and --bits run here too.
        ...Object.fromEntries(
          Object.keys(purposeRows(() => [])).map((name) => [
            name,
            name === "--passphrase-file" ? FREE : same("derive"),
          ]),
        ),
        "<purpose>": { argv: ["foo", "--data-dir", D("server")], names: "foo" },
        "--bits": { argv: ["rsa", "--data-dir", D("server"), "--bits", "1024"] },
        "--for": "bad name!",
        "--holders": { argv: ["multisig", "--data-dir", D("server"), "--holders", "a,b,a"] },
        "--qr-png": "/any/qr.png", // without --reveal-secret
        "--qr-svg": "/any/qr.svg",
      },
    },
    derive: {
      base: ["otp", "--secret", HEX64],
      rows: {
        ...purposeRows((purpose) => [purpose, "--secret", HEX64]),
        "--secret-file": FREE,
        "--secret": "zz",
        "--qr-png": "/any/qr.png", // without --reveal-secret
        "--qr-svg": "/any/qr.svg",
      },
    },
    status: {
      base: ["--data-dir", D("server")],
      rows: {
        ...adminRows,
        "--server-fingerprint": "SHA256:short",
        "--ca": { argv: ["--data-dir", D("server"), "--server", WS, "--ca", "/any/ca.pem"] },
      },
    },
    "requester init": {
      base: req(),
      rows: { ...requesterRows, "--bits": "1024" },
    },
    "requester add": {
      base: ["web", "--public-key", D("web.pub.pem"), "--data-dir", D("server")],
      rows: {
        "<name>": { argv: ["bad name!", "--public-key", D("web.pub.pem")], names: "name" },
        "--public-key": FREE,
        ...adminStoreRows,
      },
    },
    "requester remove": {
      base: ["web", "--data-dir", D("server")],
      rows: { "<name>": { argv: ["bad name!"], names: "name" }, ...adminStoreRows },
    },
    "requester list": { base: ["--data-dir", D("server")], rows: adminStoreRows },
    "requester login": {
      base: ["--credential-file", D("credential"), ...req()],
      rows: { ...requesterRows, "--credential-file": FREE },
    },
    "otp code": {
      base: ["--secret", "JBSWY3DPEHPK3PXP"],
      rows: {
        "--secret": "1",
        "--uri": "x",
        "--time": "yesterday",
        "--counter": "x",
        "--algorithm": "MD5",
        "--digits": "9",
        "--period": "0",
      },
    },
    "otp request": {
      base: req(),
      rows: {
        ...requesterRows,
        "--ca": "/any/ca.pem", // a CA for a plain http:// server
        "--subject": "bad subject",
        "--ttl": "10s",
      },
    },
    "otp verify": {
      base: req("--subject", "alice", "--code", "123456"),
      rows: { ...requesterRows, "--subject": "bad subject", "--code": "12ab" },
    },
    "otp unlock": {
      base: req("--subject", "alice"),
      rows: { ...requesterRows, "--subject": "bad subject" },
    },
    "totp enroll": {
      base: req("--issuer", "Acme", "--account", "alice"),
      rows: {
        ...requesterRows,
        // Checked by the distribution server (with the derivation's own rules); its refusal
        // names the flag (src/cli/request-fields.ts).
        "--issuer": FREE,
        "--account": FREE,
        "--algorithm": "MD5",
        "--digits": "7",
        "--period": "5",
        "--qr-png": FREE, // checked before the round: two-factor-cli.test.ts
        "--qr-svg": FREE,
        "--counter": "3", // without --hotp
        "--recovery-codes": "21",
      },
    },
    "totp recovery-verify": {
      base: req("--account", "alice", "--code", "abcde-fghjk"),
      rows: { ...requesterRows, "--account": "bad account", "--code": "abc" },
    },
    "totp verify": {
      base: req("--account", "alice", "--code", "123456"),
      rows: { ...requesterRows, "--account": "bad account", "--code": "12ab" },
    },
    "totp unlock": {
      base: req("--account", "alice"),
      rows: { ...requesterRows, "--account": "bad account" },
    },
    "key show": {
      base: [ULID, ...req()],
      rows: { ...requesterRows, "<id>": { argv: ["nope", ...req()], names: "record id" } },
    },
    "key fetch": {
      base: [ULID, "--out", D("key.json"), ...req()],
      rows: {
        ...requesterRows,
        "<id>": { argv: ["nope", "--out", D("key.json"), ...req()], names: "record id" },
        "--out": FREE,
      },
    },
    "key export-secret": {
      base: [ULID, "--out", D("rec.hex"), "--data-dir", D("server")],
      rows: {
        ...adminRows,
        "<id>": {
          argv: ["nope", "--out", D("rec.hex"), "--data-dir", D("server")],
          names: "record id",
        },
        "--out": FREE, // a new file: derivation-export-cli.test.ts
      },
    },
    "audit log": {
      base: ["--server", HTTP],
      rows: {
        "--server": "notaurl",
        // --file and --server together: one log at a time.
        "--file": { argv: ["--server", HTTP, "--file", D("log.json")] },
        "--ca": "/any/ca.pem", // a CA for a plain http:// server
        "--server-fingerprint": "SHA256:short",
        "--witness": "not-a-vkey",
        "--min-cosignatures": "1", // without a --witness to count
        "--since": FREE, // a file read after the checks: audit-log.test.ts
        "--save": D("no-such-folder/seen.checkpoint"),
        "--export": D("no-such-folder/log.json"),
      },
    },
    "store migrate": {
      base: ["--store", "postgres://dkeygen@127.0.0.1:9/dkeygen"],
      rows: { "--store": "postgres://u:secret@127.0.0.1:9" }, // no database; the password not shown
    },
    "store compact": {
      base: ["--data-dir", dir.path],
      rows: {
        "--data-dir": D("no-such-folder"),
        "--retain-used": "-1d",
        "--store-head": FREE, // read when the key_store opens: test/store/compaction.test.ts
      },
    },
    "store copy": {
      base: ["--from", dir.path, "--to", "postgres://dkeygen@127.0.0.1:9/dkeygen"],
      rows: {
        "--from": D("no-such-folder"),
        "--to": "postgres://u:secret@127.0.0.1:9", // no database; the password not shown
        "--store-head": FREE, // read when the key_store opens: test/store/store-copy.test.ts
      },
    },
    "audit record": {
      base: [ULID, ...req()],
      rows: {
        ...requesterRows,
        "<id>": { argv: ["nope", ...req()], names: "record id" },
        "--server-fingerprint": "SHA256:short",
        "--passphrase-file": FREE, // a file, read after the record's opening: audit-record-cli.test.ts
        // With --admin: a file, read when the admin session opens: audit-record-admin-cli.test.ts.
        "--admin-token-file": FREE,
        "--log-server": { argv: [ULID, "--admin", "--data-dir", D("server"), "--log-server", WS] },
      },
    },
    sign: {
      base: ["--key", D("key.pem"), "--message", "hi", "--nonce", HEX64],
      rows: {
        ...adminRows,
        "--key": FREE,
        "--message": FREE,
        "--message-file": {
          argv: ["--key", D("key.pem"), "--message", "hi", "--message-file", D("m")],
        },
        "--nonce": "zz",
        "--scheme": "rsa",
        "--format": "pem",
      },
    },
  };
}

/** Every command (by path) and the options and arguments of it that take a value. */
function valueOptions(): Map<string, { names: string[]; json: boolean }> {
  const found = new Map<string, { names: string[]; json: boolean }>();
  const walk = (command: Command, path: string[]) => {
    const names = [
      ...command.options.filter((o) => o.required || o.optional).map((o) => o.long!),
      ...command.registeredArguments.map((a) => `<${a.name()}>`),
    ];
    const json = command.options.some((o) => o.long === "--json");
    if (names.length > 0) found.set(path.join(" "), { names, json });
    for (const sub of command.commands) walk(sub, [...path, sub.name()]);
  };
  walk(buildProgram(), []);
  return found;
}

test("every option and argument that takes a value has a row in the usage table", () => {
  const table = tables();
  const missing: string[] = [];
  for (const [command, { names }] of valueOptions()) {
    for (const name of names) {
      if (!(name in (table[command]?.rows ?? {}))) missing.push(`${command} ${name}`);
    }
  }
  for (const [command, { rows }] of Object.entries(table)) {
    for (const [name, row] of Object.entries(rows)) {
      if (row === null || typeof row !== "object" || !("same" in row)) continue;
      const there = table[row.same]?.rows[name];
      assert.ok(
        there !== undefined && there !== null && !(typeof there === "object" && "same" in there),
        `${command} ${name}: ${row.same} has no row that runs for it`,
      );
    }
  }
  assert.deepEqual(missing, [], "add a row (a bad value, or FREE with a reason) for each");
  const known = valueOptions();
  for (const [command, { rows }] of Object.entries(table)) {
    for (const name of Object.keys(rows)) {
      assert.ok(known.get(command)?.names.includes(name), `${command} has no ${name}`);
    }
  }
});

test("every bad option value exits 2 with one line naming the flag (and E_USAGE with --json), before anything is read or made", async () => {
  const table = tables();
  const options = valueOptions();
  const cases: { command: string; name: string; argv: string[]; names: string }[] = [];
  for (const [command, { base, rows }] of Object.entries(table)) {
    for (const [name, row] of Object.entries(rows)) {
      if (row === FREE || (typeof row === "object" && "same" in row)) continue;
      const argv =
        typeof row === "string" ? [...base, name, row] : (row as { argv: string[] }).argv;
      const json = options.get(command)!.json;
      cases.push({
        command,
        name,
        argv: [...command.split(" "), ...argv, ...(json ? ["--json"] : [])],
        names: typeof row === "string" ? name : ((row as { names?: string }).names ?? name),
      });
    }
  }
  const failures: string[] = [];
  const check = (c: (typeof cases)[number], result: CliResult) => {
    const where = `dkeygen ${c.argv.join(" ")}`;
    if (result.status !== 2) {
      failures.push(`${where}: exit ${result.status}: ${result.stderr}`);
      return;
    }
    const line = /^dkeygen: ([^\n]+)\n$/.exec(result.stderr);
    if (!line) failures.push(`${where}: not one line on stderr: ${JSON.stringify(result.stderr)}`);
    else if (!line[1]!.toLowerCase().includes(c.names.replace(/^<|>$/g, "").toLowerCase())) {
      failures.push(`${where}: the line does not name ${c.names}: ${line[1]}`);
    }
    if (c.argv.includes("--json")) {
      let document: { ok?: boolean; error?: { code?: string; message?: string } } = {};
      try {
        document = JSON.parse(result.stdout);
      } catch {
        failures.push(`${where}: no JSON document: ${result.stdout}`);
        return;
      }
      if (document.ok !== false || document.error?.code !== "E_USAGE") {
        failures.push(`${where}: not an E_USAGE document: ${result.stdout}`);
      } else if (line && document.error.message !== line[1]) {
        failures.push(`${where}: the document and the line differ`);
      }
    } else if (result.stdout !== "") {
      failures.push(`${where}: printed on stdout: ${result.stdout}`);
    }
  };
  const env = { DKEYGEN_HOME: D("home") };
  // Every row through main() in one process (a Node start per row would take minutes); the
  // first row of each command also through the executable, which must answer the same.
  const results = await runCliBatch(
    cases.map((c) => c.argv),
    { env },
  );
  for (const [i, c] of cases.entries()) check(c, results[i]!);
  const firsts = cases.filter((c, i) => i === 0 || cases[i - 1]!.command !== c.command);
  for (const c of firsts) {
    const real = await runCli(c.argv, { env });
    check(c, real);
    const batched = results[cases.indexOf(c)]!;
    assert.deepEqual(real, batched, `the executable and main() differ for ${c.argv.join(" ")}`);
  }
  assert.deepEqual(failures, []);
  assert.ok(cases.length > 80, `${cases.length} cases`);
  for (const made of ["server", "contributor", "requester", "home"]) {
    assert.equal(existsSync(D(made)), false, `${made} was made by a command that was refused`);
  }
});

test("commander's own usage errors are one line naming the command's --help, exit 2, E_USAGE with --json", async () => {
  const unknown = await runCli([
    "otp",
    "verify",
    "--subject",
    "a",
    "--code",
    "123456",
    "--subjct",
    "a",
    "--json",
  ]);
  assert.equal(unknown.status, 2);
  assert.match(
    unknown.stderr,
    /^dkeygen: unknown option '--subjct' \(Did you mean --subject\?\) \(see: dkeygen otp verify --help\)\n$/,
  );
  assert.equal(JSON.parse(unknown.stdout).error.code, "E_USAGE");

  const missing = await runCli(["generate"]);
  assert.equal(missing.status, 2);
  assert.equal(
    missing.stderr,
    "dkeygen: missing required argument 'purpose' (see: dkeygen generate --help)\n",
  );
  assert.equal(missing.stdout, "");

  const help = await runCli(["otp", "verify", "--help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: dkeygen otp verify/);
});
