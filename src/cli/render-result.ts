/**
 * How a generated or derived result is shown: the public part always, the secret part only when
 * the user asked for it by name (--reveal-secret), and QR codes of otpauth:// URIs (which hold the
 * secret) only then too.
 */
import type { JsonObject } from "../json.js";
import { onUserPath } from "./file-errors.js";
import { printJson, printTable } from "./output.js";
import { renderQrTerminal, writeQrPng, writeQrSvg } from "./qr.js";

export interface ShowOptions {
  json?: boolean;
  qr?: boolean;
  qrPng?: string;
  qrSvg?: string;
}

function rows(object: JsonObject): [string, string][] {
  return Object.entries(object).map(([key, value]) => [
    key,
    typeof value === "string" ? value : JSON.stringify(value),
  ]);
}

/** Prints `header` rows, the public part and (if given) the secret part; writes QR files. */
export async function showResult(
  header: [string, string][],
  publicPart: JsonObject,
  secretPart: JsonObject | undefined,
  options: ShowOptions,
  jsonBody: Record<string, unknown>,
): Promise<void> {
  const uri = typeof secretPart?.uri === "string" ? secretPart.uri : undefined;
  const { qrPng, qrSvg } = options;
  if (uri && qrPng) await onUserPath("--qr-png", qrPng, "write", () => writeQrPng(qrPng, uri));
  if (uri && qrSvg) await onUserPath("--qr-svg", qrSvg, "write", () => writeQrSvg(qrSvg, uri));
  if (options.json) {
    printJson(secretPart === undefined ? jsonBody : { ...jsonBody, secret: secretPart });
    return;
  }
  printTable([...header, ...rows(publicPart)]);
  if (secretPart !== undefined) {
    process.stdout.write("secret part (shown because --reveal-secret was given):\n");
    printTable(rows(secretPart));
    if (uri && options.qr) process.stdout.write(`${renderQrTerminal(uri)}\n`);
  }
  if (uri && options.qrPng) process.stdout.write(`QR code written to ${options.qrPng} (0600)\n`);
  if (uri && options.qrSvg) process.stdout.write(`QR code written to ${options.qrSvg} (0600)\n`);
}

/** Refuses QR output without --reveal-secret: the URI in the QR code carries the secret. */
export function qrNeedsReveal(
  options: ShowOptions & { revealSecret?: boolean },
): string | undefined {
  if ((options.qr || options.qrPng || options.qrSvg) && !options.revealSecret) {
    const flag = options.qrPng ? "--qr-png" : options.qrSvg ? "--qr-svg" : "--qr";
    return `A QR code holds the secret; ${flag} needs --reveal-secret.`;
  }
  return undefined;
}
