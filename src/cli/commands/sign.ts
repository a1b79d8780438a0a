/**
 * `dkeygen sign`: signs a message with a secp256k1 or P-256 key, taking the signature's extra
 * randomness (RFC 6979 §3.6 hedged ECDSA, or BIP340 aux_rand) from a round's nonce, so that the
 * signature's randomness comes from the contributors.
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { type SignatureScheme, signingKeyFromPem, signWithRoundNonce } from "../../derive/nonce.js";
import { DkeygenError, ErrorCodes } from "../../errors.js";
import { onUserPath } from "../file-errors.js";
import { printJson } from "../output.js";
import { type AdminFlags, checkAdminFlags, connectAdmin, withAdminOptions } from "./generate.js";

interface SignFlags extends AdminFlags {
  key: string;
  message?: string;
  messageFile?: string;
  nonce?: string;
  fromServer?: boolean;
  scheme: string;
  format: string;
  json?: boolean;
}

export function registerSign(program: Command): void {
  withAdminOptions(
    program
      .command("sign")
      .description("sign a message, with a round's nonce as the signature's extra randomness")
      .requiredOption("--key <file>", "PKCS#8 PEM private key (secp256k1 or P-256)")
      .option("--message <text>", "the message (UTF-8)")
      .option("--message-file <file>", "the message, from a file")
      .option("--nonce <hex>", "the 32-byte nonce value of a `nonce` round (or DKEYGEN_NONCE)")
      .option("--from-server", "run a nonce round on the server now and use its value"),
  )
    .option("--scheme <scheme>", "ecdsa (RFC 6979 hedged) or schnorr (BIP340, secp256k1)", "ecdsa")
    .option("--format <format>", "ECDSA signature encoding: compact or der", "der")
    .option("--json", "print as JSON")
    .action(async (flags: SignFlags) => {
      const usage = (m: string) => new DkeygenError(ErrorCodes.USAGE, m);
      checkAdminFlags(flags);
      if ((flags.message === undefined) === (flags.messageFile === undefined)) {
        throw usage("Give exactly one of --message and --message-file.");
      }
      if (flags.scheme !== "ecdsa" && flags.scheme !== "schnorr")
        throw usage("--scheme wants ecdsa or schnorr.");
      if (flags.format !== "compact" && flags.format !== "der")
        throw usage("--format wants compact or der.");
      if (flags.nonce !== undefined && !/^[0-9a-fA-F]{64}$/.test(flags.nonce))
        throw usage("--nonce wants the round nonce's 32-byte value as 64 hex digits.");
      const message =
        flags.message !== undefined
          ? new TextEncoder().encode(flags.message)
          : new Uint8Array(
              await onUserPath("--message-file", flags.messageFile!, "read", () =>
                readFile(flags.messageFile!),
              ),
            );
      const { curve, privateKey } = signingKeyFromPem(
        await onUserPath("--key", flags.key, "read", () => readFile(flags.key, "utf8")),
      );

      let nonceHex = flags.nonce ?? process.env.DKEYGEN_NONCE;
      let recordId: string | undefined;
      if (flags.fromServer) {
        if (nonceHex !== undefined) throw usage("Give --nonce or --from-server, not both.");
        const admin = await connectAdmin(flags);
        try {
          const { record, secret } = await admin.generateRevealed("nonce", { curve });
          nonceHex = String(secret.value);
          recordId = record.id;
        } finally {
          admin.close();
        }
      }
      if (nonceHex === undefined || !/^[0-9a-fA-F]{64}$/.test(nonceHex)) {
        throw usage(
          "Give the round nonce's 32-byte value as 64 hex digits (--nonce), or --from-server.",
        );
      }
      const nonce = new Uint8Array(Buffer.from(nonceHex, "hex"));
      const signature = signWithRoundNonce(message, privateKey, nonce, curve, {
        scheme: flags.scheme as SignatureScheme,
        format: flags.format as "compact" | "der",
      });
      privateKey.fill(0);
      nonce.fill(0);
      const hex = Buffer.from(signature).toString("hex");
      if (flags.json) {
        printJson({
          curve,
          scheme: flags.scheme,
          format: flags.scheme === "ecdsa" ? flags.format : "bip340",
          signature: hex,
          ...(recordId ? { nonceRecord: recordId } : {}),
        });
      } else {
        process.stdout.write(`${hex}\n`);
      }
    });
}
