/**
 * Throwaway certificates for the TLS tests, made with the `openssl` binary: a private CA and a
 * server certificate it issued for 127.0.0.1 and localhost, another CA that issued nothing the
 * server uses, a certificate for another name, and a key that matches none of them.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

export const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/** For `test(name, { skip: skipWithoutOpenssl }, …)`. */
export const skipWithoutOpenssl =
  !hasOpenssl && "openssl is not installed (bash .ci/run installs it)";

export interface TestPki {
  /** The CA that issued the server certificates. */
  caFile: string;
  /** A CA that issued nothing the server uses. */
  otherCaFile: string;
  /** For IP 127.0.0.1 and DNS localhost, issued by the CA; its key in keyFile (0600). */
  certFile: string;
  keyFile: string;
  /** For DNS dkeygen.test only, issued by the CA; its key in otherNameKeyFile. */
  otherNameCertFile: string;
  otherNameKeyFile: string;
  /** A key no certificate here is for (0600). */
  strayKeyFile: string;
  ca(): Promise<string>;
  otherCa(): Promise<string>;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

/** A P-256 key, 0600 (a secret file dkeygen would refuse otherwise). */
function newKey(dir: string, name: string): void {
  openssl(dir, [
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    name,
  ]);
  chmodSync(join(dir, name), 0o600);
}

function selfSignedCa(dir: string, name: string, subject: string): void {
  newKey(dir, `${name}.key`);
  openssl(dir, [
    "req",
    "-x509",
    "-new",
    "-key",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=${subject}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
}

function issue(dir: string, name: string, altNames: string): void {
  newKey(dir, `${name}.key`);
  openssl(dir, [
    "req",
    "-new",
    "-key",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/CN=${name}`,
  ]);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(
    ext,
    `subjectAltName=${altNames}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`,
  );
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    `${name}.pem`,
    "-days",
    "1",
    "-extfile",
    ext,
  ]);
}

/** Makes the certificates in `dir` (which must exist). */
export function makeTestPki(dir: string): TestPki {
  selfSignedCa(dir, "ca", "dkeygen test CA");
  selfSignedCa(dir, "other-ca", "some other CA");
  issue(dir, "server", "IP:127.0.0.1,DNS:localhost");
  issue(dir, "other-name", "DNS:dkeygen.test");
  newKey(dir, "stray.key");
  const at = (name: string) => join(dir, name);
  return {
    caFile: at("ca.pem"),
    otherCaFile: at("other-ca.pem"),
    certFile: at("server.pem"),
    keyFile: at("server.key"),
    otherNameCertFile: at("other-name.pem"),
    otherNameKeyFile: at("other-name.key"),
    strayKeyFile: at("stray.key"),
    ca: () => readFile(at("ca.pem"), "utf8"),
    otherCa: () => readFile(at("other-ca.pem"), "utf8"),
  };
}
