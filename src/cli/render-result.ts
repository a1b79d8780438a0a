/**
 * How a generated or derived result is shown: the public part always, the secret part only when
 * the user asked for it by name (--reveal-secret), and QR codes of otpauth:// URIs (which hold the
 * secret) only then too.
 */
import type { Json, JsonObject } from "../json.js";
import { checkOutputFile, onUserPath } from "./file-errors.js";
import { printJson, printTable } from "./output.js";
import { renderQrTerminal, writeQrPng, writeQrSvg } from "./qr.js";

export interface ShowOptions {
  json?: boolean;
  qr?: boolean;
  qrPng?: string;
  qrSvg?: string;
}

type Row = [string, string];

const isObject = (value: Json): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const isTableOf = (value: Json): value is JsonObject[] =>
  Array.isArray(value) && value.length > 0 && value.every(isObject);
const isNested = (value: Json) => isTableOf(value);
const text = (value: Json): string =>
  typeof value === "string"
    ? value
    : Array.isArray(value)
      ? value.map((v) => text(v)).join(", ")
      : JSON.stringify(value);

/**
 * Prints `object` as people read it, `indent` spaces in: plain values as aligned `label  value`
 * rows (after `lead`; an object such as a JWK as its one-line JSON), then each list of objects: a
 * list of flat objects (a multisig's keys) as a table with a heading row, a list of objects that
 * hold lists (a wallet's accounts and their addresses) as one block per object.
 */
export function printFields(object: JsonObject, indent = 2, lead: readonly Row[] = []): void {
  const entries = Object.entries(object);
  const rows: Row[] = [
    ...lead,
    ...entries
      .filter(([, value]) => !isNested(value))
      .map(([key, value]): Row => [key, text(value)]),
  ];
  if (rows.length > 0) printTable(rows, process.stdout, indent);
  for (const [key, value] of entries) {
    if (!isTableOf(value)) continue;
    process.stdout.write(`${" ".repeat(indent)}${key}\n`);
    if (value.every((item) => !Object.values(item).some(isNested))) printColumns(value, indent + 2);
    else for (const item of value) printFields(item, indent + 2);
  }
}

/** A list of flat objects as a table: a heading row of their keys, then one row each. */
function printColumns(items: readonly JsonObject[], indent: number): void {
  const keys = [...new Set(items.flatMap((item) => Object.keys(item)))];
  const cells = [keys, ...items.map((item) => keys.map((k) => (k in item ? text(item[k]!) : "-")))];
  const widths = keys.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  for (const row of cells) {
    const line = row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)));
    process.stdout.write(`${" ".repeat(indent)}${line.join("  ")}\n`);
  }
}

/** `secret` without the members the public part already shows with the same value. */
function withoutRepeats(secret: JsonObject, shown: JsonObject): JsonObject {
  return Object.fromEntries(
    Object.entries(secret).filter(
      ([key, value]) => !(key in shown && JSON.stringify(shown[key]) === JSON.stringify(value)),
    ),
  ) as JsonObject;
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
  printFields(publicPart, 2, header);
  if (secretPart !== undefined) {
    process.stdout.write("secret part (shown because --reveal-secret was given):\n");
    printFields(withoutRepeats(secretPart, publicPart));
    if (uri && options.qr) process.stdout.write(`${renderQrTerminal(uri)}\n`);
  }
  if (uri && options.qrPng) process.stdout.write(`QR code written to ${options.qrPng} (0600)\n`);
  if (uri && options.qrSvg) process.stdout.write(`QR code written to ${options.qrSvg} (0600)\n`);
}

/**
 * Checks the --qr-png and --qr-svg files before anything runs (a round, a derivation): a usage
 * error, naming the flag and the file, rather than a secret made for a file it cannot be saved in.
 * A file that exists is replaced.
 */
export async function checkQrFiles(options: ShowOptions): Promise<void> {
  if (options.qrPng) await checkOutputFile("--qr-png", options.qrPng, { replace: true });
  if (options.qrSvg) await checkOutputFile("--qr-svg", options.qrSvg, { replace: true });
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
