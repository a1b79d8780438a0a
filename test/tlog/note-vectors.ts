/** Types of test/vectors/tlog/signed-notes.json, and reading Go's private key strings. */

export interface NoteVectors {
  goSumdbNote: {
    peterVerifierKey: string;
    peterSignerKey: string;
    enochVerifierKey: string;
    text: string;
    peterSignatureLine: string;
    enochSignatureLine: string;
    badVerifierKeys: string[];
  };
  goSumdbClientCheckpoint: { verifierKey: string; signerKey: string; note: string };
  sumGolangOrgCheckpoint: {
    verifierKey: string;
    origin: string;
    size: number;
    rootHash: string;
    note: string;
    extraVerifierKeys: string[];
    extraSignatureLines: string[];
  };
  c2spSignedNoteExample: { verifierKey: string; note: string };
  c2spCosignatureExample: {
    note: string;
    cosignerName: string;
    timestamp: number;
    signedMessage: string;
  };
  cosignerVerifierKeys: { valid: string[]; invalid: string[] };
}

/**
 * The Ed25519 secret key (seed) in a golang.org/x/mod sumdb/note signer key,
 * "PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || seed)>" (a Go format, not part of C2SP).
 */
export function goSignerSeed(skey: string): Uint8Array {
  const parts = skey.split("+");
  if (parts[0] !== "PRIVATE" || parts[1] !== "KEY") throw new Error("not a Go signer key");
  const material = Buffer.from(parts.slice(4).join("+"), "base64");
  if (material.length !== 33 || material[0] !== 0x01) throw new Error("not an Ed25519 signer key");
  return new Uint8Array(material.subarray(1));
}
