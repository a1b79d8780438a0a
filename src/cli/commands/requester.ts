/**
 * `dkeygen requester ...`: a requesting client's key pair and credential (init, login), and the
 * admin side of registering one (add, remove, list): in the server's data folder (requesters.json),
 * or with --store postgres://… (DKEYGEN_STORE_URL) in the database, where every distribution
 * server on it reads them.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { RequesterClient } from "../../client/requester.js";
import {
  CREDENTIAL_PATTERN,
  loadCredential,
  loadOrCreateRequesterKeys,
  loadServerCa,
  REQUESTER_KEY_FILE,
  readRequesterConfig,
  saveCredential,
  saveServerCa,
  writeRequesterConfig,
} from "../../client/requester-state.js";
import { fromBase64url } from "../../crypto/base64url.js";
import { Secret } from "../../crypto/secret.js";
import { fileExists } from "../../datadir/files.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { PostgresRequesterStore } from "../../server/postgres-requester-store.js";
import {
  FileRequesterStore,
  REQUESTER_NAME,
  type RequesterStore,
} from "../../server/requesters.js";
import { readServerInfo, STORE_KEY_FILE } from "../../server/runtime.js";
import { PostgresKeyStore } from "../../store/postgres.js";
import { onUserPath } from "../file-errors.js";
import { caOption, dataDirOption, storeUrlOption } from "../options.js";
import { printJson, printTable } from "../output.js";

export interface RequesterFlags {
  dataDir?: string;
  server?: string;
  ca?: string;
}

/** Adds --data-dir (the requester's), --server (the distribution server's URL) and --ca. */
export function withRequesterOptions(command: Command): Command {
  return command
    .option("--data-dir <dir>", "requester data folder (default: $DKEYGEN_HOME/requester)")
    .option(
      "--server <url>",
      "distribution server URL (default: from requester.json, or DKEYGEN_SERVER_HTTP)",
    )
    .option(
      "--ca <file>",
      "https:// only: trust only this CA's PEM certificate(s) for the server (init and login keep it)",
    );
}

function checkServerUrl(server: string): string {
  if (!/^https?:\/\/[^/]/i.test(server)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      /^wss?:/i.test(server)
        ? `--server wants the distribution server's URL (http:// or https://, its --http-listen port, default 7421); ${server} is the WebSocket URL, for contributors and admins.`
        : `--server wants an http:// or https:// URL; got "${server}".`,
    );
  }
  return server;
}

/** Refuses a --server or --ca that cannot be right, before anything is read. */
function checkRequesterFlags(flags: RequesterFlags): void {
  if (flags.server !== undefined) checkServerUrl(flags.server);
  if (flags.ca !== undefined && flags.server !== undefined && !/^https:/i.test(flags.server)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      `--ca is for a TLS server (https://); ${flags.server} is plain.`,
    );
  }
}

/** A requester name as `requester add` and `remove` take it. */
function checkName(name: string): void {
  if (!REQUESTER_NAME.test(name)) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "A requester name holds letters, digits and . _ @ - (up to 64, starting with a letter or digit).",
    );
  }
}

/**
 * init and login: remembers --server and --ca in the data folder, so later commands need neither.
 * Returns where the CA was kept, if one was given.
 */
async function rememberServer(dataDir: string, flags: RequesterFlags): Promise<string | undefined> {
  const server =
    flags.server === undefined
      ? (process.env.DKEYGEN_SERVER_HTTP ?? (await readRequesterConfig(dataDir)).server)
      : checkServerUrl(flags.server);
  let caPath: string | undefined;
  if (flags.ca !== undefined) {
    if (server === undefined) {
      throw new DkeygenError(ErrorCodes.USAGE, "--ca needs the server's URL: --server https://…");
    }
    caPath = await saveServerCa(dataDir, (await caOption(flags.ca, server))!);
  }
  if (flags.server !== undefined) await writeRequesterConfig(dataDir, { server: flags.server });
  return caPath;
}

/**
 * Asks the distribution server whom `credential` is registered for and refuses it unless that is
 * this client's key: a credential for another key would cost OTPs this client cannot decrypt.
 */
async function checkCredential(
  dataDir: string,
  flags: RequesterFlags,
  credential: string,
): Promise<{ name: string; fingerprint: string }> {
  if (!(await fileExists(join(dataDir, REQUESTER_KEY_FILE)))) {
    throw new DkeygenError(
      ErrorCodes.OPERATIONAL,
      `${dataDir} has no requester key; make it first (dkeygen requester init --data-dir ${dataDir}).`,
    );
  }
  const server =
    flags.server ?? process.env.DKEYGEN_SERVER_HTTP ?? (await readRequesterConfig(dataDir)).server;
  if (server === undefined) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "No distribution server known to check the credential with: pass --server URL.",
    );
  }
  checkServerUrl(server);
  const ca =
    flags.ca !== undefined
      ? await caOption(flags.ca, server)
      : /^https:/i.test(server)
        ? await loadServerCa(dataDir)
        : undefined;
  const keys = await loadOrCreateRequesterKeys(dataDir);
  const client = new RequesterClient({
    server,
    credential: new Secret(new Uint8Array(Buffer.from(credential, "utf8"))),
    privateKey: keys.privateKey,
    fingerprint: keys.fingerprint,
    ...(ca === undefined ? {} : { ca }),
  });
  return client.checkRegistration();
}

/** A ready client from the requester's data folder. */
export async function requesterClient(flags: RequesterFlags): Promise<RequesterClient> {
  checkRequesterFlags(flags);
  const dataDir = dataDirOption(flags.dataDir, "requester");
  const server =
    flags.server ?? process.env.DKEYGEN_SERVER_HTTP ?? (await readRequesterConfig(dataDir)).server;
  if (server === undefined) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "No distribution server known: pass --server URL (or run: dkeygen requester init --server URL).",
    );
  }
  checkServerUrl(server);
  // --ca for this call, else the one kept at init or login (for an https:// server only).
  const ca =
    flags.ca !== undefined
      ? await onUserPath("--ca", flags.ca, "read", () => caOption(flags.ca, server))
      : /^https:/i.test(server)
        ? await onUserPath("--data-dir", dataDir, "folder", () => loadServerCa(dataDir))
        : undefined;
  const keys = await onUserPath("--data-dir", dataDir, "folder", () =>
    loadOrCreateRequesterKeys(dataDir),
  );
  if (keys.created) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      `${dataDir} had no requester key; one was made now. Have it registered first (dkeygen requester add NAME --public-key ${keys.publicKeyPath}).`,
    );
  }
  return new RequesterClient({
    server,
    credential: await onUserPath("--data-dir", dataDir, "folder", () => loadCredential(dataDir)),
    privateKey: keys.privateKey,
    fingerprint: keys.fingerprint,
    ...(ca === undefined ? {} : { ca }),
  });
}

/** The options of the admin commands (add, remove, list): where registrations are kept. */
interface AdminStoreFlags {
  dataDir?: string;
  store?: string;
  storeKeyFile?: string;
}

function withAdminStoreOptions(command: Command): Command {
  return command
    .option("--data-dir <dir>", "the server's data folder (default: $DKEYGEN_HOME/server)")
    .option(
      "--store <url>",
      "registrations in the PostgreSQL key store: postgres://USER:PASSWORD@HOST:PORT/DATABASE (or DKEYGEN_STORE_URL; default: requesters.json in the data folder)",
    )
    .option(
      "--store-key-file <file>",
      "with --store: the store key file (default: <data-dir>/store.key)",
    );
}

/** Checks --store and --store-key-file before anything is read; returns the store URL, if any. */
function checkAdminStoreFlags(flags: AdminStoreFlags): string | undefined {
  const url = storeUrlOption(flags.store);
  if (url === undefined && flags.storeKeyFile !== undefined) {
    throw new DkeygenError(
      ErrorCodes.USAGE,
      "--store-key-file is for registrations in a PostgreSQL store (--store postgres://… or DKEYGEN_STORE_URL).",
    );
  }
  return url;
}

/**
 * Runs `body` on the registrations the admin commands change: requesters.json in the server's
 * data folder, or the database's tables with a store URL, opened with the store key (never made
 * here: a new key would not be the database's).
 */
async function withRequesterStore<T>(
  flags: AdminStoreFlags,
  url: string | undefined,
  body: (store: RequesterStore, dataDir: string) => Promise<T>,
): Promise<T> {
  const dataDir = dataDirOption(flags.dataDir, "server");
  if (url === undefined) return body(new FileRequesterStore(dataDir), dataDir);
  const [flag, keyPath] =
    flags.storeKeyFile === undefined
      ? ["--data-dir", join(dataDir, STORE_KEY_FILE)]
      : ["--store-key-file", flags.storeKeyFile];
  const storeKey = await onUserPath(flag, keyPath, "read", async () =>
    fromBase64url((await readFile(keyPath, "utf8")).trim(), keyPath, 32),
  );
  const store = new PostgresKeyStore({ url, storeKey });
  const requesters = new PostgresRequesterStore(store, storeKey);
  // Both derived their own keys from it.
  storeKey.fill(0);
  await store.open();
  try {
    return await body(requesters, dataDir);
  } finally {
    await store.close();
  }
}

export function registerRequester(program: Command): void {
  const requester = program
    .command("requester")
    .description("requesting clients: make a key pair, register it, store its credential");

  withRequesterOptions(
    requester
      .command("init")
      .description("make this client's RSA key pair (once) and remember its distribution server"),
  )
    .option("--bits <n>", "RSA key size: 3072 or 4096", "3072")
    .option("--json", "print as JSON")
    .action(async (flags: RequesterFlags & { bits: string; json?: boolean }) => {
      const dataDir = dataDirOption(flags.dataDir, "requester");
      if (flags.bits !== "3072" && flags.bits !== "4096") {
        throw new DkeygenError(ErrorCodes.USAGE, `--bits wants 3072 or 4096; got "${flags.bits}".`);
      }
      const bits = Number(flags.bits);
      const keys = await onUserPath("--data-dir", dataDir, "folder", async () => {
        const caFile = await rememberServer(dataDir, flags);
        return { ...(await loadOrCreateRequesterKeys(dataDir, bits)), caFile };
      });
      const { caFile } = keys;
      const publicKey = keys.publicKey.export({ type: "spki", format: "pem" }) as string;
      if (flags.json) {
        printJson({
          fingerprint: keys.fingerprint,
          publicKeyFile: keys.publicKeyPath,
          publicKey,
          created: keys.created,
          ...(caFile === undefined ? {} : { caFile }),
        });
        return;
      }
      process.stdout.write(publicKey);
      printTable([
        ["fingerprint", `${keys.fingerprint}${keys.created ? "  (new RSA key)" : ""}`],
        ["public key", keys.publicKeyPath],
        ...(caFile === undefined ? [] : ([["server CA", caFile]] as [string, string][])),
        ["next", `an admin runs: dkeygen requester add NAME --public-key ${keys.publicKeyPath}`],
        ["then", "dkeygen requester login --credential-file FILE   (or - for stdin)"],
      ]);
    });

  withAdminStoreOptions(
    requester
      .command("add")
      .description("register a requesting client's public key (admin); prints its credential once")
      .argument("<name>", "the client's name")
      .requiredOption("--public-key <file>", "the client's SPKI PEM public key (RSA ≥ 3072)"),
  )
    .option(
      "--replace",
      "give a registered name a new key and credential; it keeps its registration and records",
    )
    .option("--json", "print as JSON")
    .action(
      async (
        name: string,
        flags: AdminStoreFlags & { publicKey: string; replace?: boolean; json?: boolean },
      ) => {
        checkName(name);
        const url = checkAdminStoreFlags(flags);
        const pem = await onUserPath("--public-key", flags.publicKey, "read", () =>
          readFile(flags.publicKey, "utf8"),
        );
        const { added, dataDir } = await withRequesterStore(flags, url, async (store, dataDir) => ({
          added: await store.add(name, pem, { replace: flags.replace === true }),
          dataDir,
        }));
        let httpUrl: string | undefined;
        try {
          httpUrl = (await readServerInfo(dataDir)).httpUrl;
        } catch {
          httpUrl = undefined;
        }
        // The credential is what this command exists to show; it is printed once, here.
        if (flags.json) {
          printJson({ ...added, ...(httpUrl ? { server: httpUrl } : {}) });
          return;
        }
        process.stdout.write(`${added.credential}\n`);
        process.stderr.write(
          added.keptRegistration
            ? `Requester ${name} replaced: new key and credential; it keeps registration ${added.id} and its records. Give it the credential above (shown once).\n`
            : `Requester ${name} registered as ${added.id}. Give it the credential above (shown once).\n`,
        );
        if (added.removedBefore.length > 0) {
          process.stderr.write(
            `${name} was registered before (${added.removedBefore.join(", ")}, removed); this is a new registration and sees none of that one's records.\n`,
          );
        }
        printTable(
          [
            ["registration", added.id],
            ["fingerprint", added.fingerprint],
            ["server", httpUrl ?? "-"],
          ],
          process.stderr,
        );
      },
    );

  withAdminStoreOptions(
    requester
      .command("remove")
      .description(
        "revoke a requesting client's registration (admin); every running server on its data folder or database stops accepting its credential within a second",
      )
      .argument("<name>", "the client's name"),
  )
    .option("--json", "print as JSON")
    .action(async (name: string, flags: AdminStoreFlags & { json?: boolean }) => {
      checkName(name);
      const url = checkAdminStoreFlags(flags);
      const removed = await withRequesterStore(flags, url, (store) => store.remove(name));
      if (flags.json) printJson({ ...removed, removed: true });
      else
        process.stderr.write(
          `Requester ${name} (${removed.id}) removed; its credential no longer works, and a later registration of the name will not see its records.\n`,
        );
    });

  withAdminStoreOptions(
    requester.command("list").description("list registered requesting clients (admin)"),
  )
    .option("--json", "print as JSON")
    .action(async (flags: AdminStoreFlags & { json?: boolean }) => {
      const url = checkAdminStoreFlags(flags);
      const list = await withRequesterStore(flags, url, (store) => store.list());
      if (flags.json) printJson(list);
      else if (list.requesters.length === 0)
        process.stdout.write(
          "no requesting clients registered (dkeygen requester add NAME --public-key FILE)\n",
        );
      else
        for (const r of list.requesters) {
          const outdated = r.responseKey ? "" : "\tneeds --replace (no response key)";
          process.stdout.write(`${r.name}\t${r.id}\t${r.fingerprint}\t${r.addedAt}${outdated}\n`);
        }
    });

  withRequesterOptions(
    requester
      .command("login")
      .description("store this client's credential (0600) in its data folder"),
  )
    .requiredOption(
      "--credential-file <file>",
      "file holding the credential, or - for standard input",
    )
    .action(async (flags: RequesterFlags & { credentialFile: string }) => {
      checkRequesterFlags(flags);
      const dataDir = dataDirOption(flags.dataDir, "requester");
      let text: string;
      if (flags.credentialFile === "-") {
        text = "";
        for await (const chunk of process.stdin) text += chunk;
      } else {
        text = await onUserPath("--credential-file", flags.credentialFile, "read", () =>
          readFile(flags.credentialFile, "utf8"),
        );
      }
      const credential = text.trim();
      if (!CREDENTIAL_PATTERN.test(credential)) {
        throw new DkeygenError(
          ErrorCodes.INVALID_INPUT,
          "That is not a requester credential (dkr_<name>.<secret>).",
        );
      }
      // Before anything is kept: the server must know this credential, and for this client's key.
      const registered = await checkCredential(dataDir, flags, credential);
      await rememberServer(dataDir, flags);
      await saveCredential(dataDir, credential);
      process.stdout.write(
        `credential stored in ${dataDir} (registered as ${registered.name}, key ${registered.fingerprint})\n`,
      );
    });
}
