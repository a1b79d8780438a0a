/**
 * QR codes (ISO/IEC 18004) for otpauth:// URIs, so an authenticator app can scan a TOTP/HOTP secret:
 * drawn in the terminal, or written as PNG or SVG. The `qrcode` package does the encoding (byte mode,
 * UTF-8, error-correction level M by default); this module only chooses options and draws the module
 * matrix in the terminal.
 *
 * Terminal drawing packs two module rows into one text row with the half blocks ▀ ▄ █, so the code is
 * square in a terminal font and half as tall as one row per module. With `color` (the default on a
 * TTY) each row sets ANSI black-on-white, so the code scans on dark terminal themes too; without it,
 * dark modules are drawn as blocks, which is right on light backgrounds and on paper.
 *
 * An otpauth URI holds the shared secret, so PNG and SVG files are written with mode 0600.
 */
import { open } from "node:fs/promises";
import QRCode from "qrcode";

export type ErrorCorrection = "L" | "M" | "Q" | "H";

export interface QrOptions {
  /** Error-correction level (default M, 15% of codewords recoverable). */
  errorCorrection?: ErrorCorrection;
  /** Quiet zone in modules around the code. ISO/IEC 18004 asks for 4 (the default). */
  margin?: number;
}

/** The module matrix of a QR code: `dark(row, col)` for 0 ≤ row, col < size. */
export interface QrMatrix {
  version: number;
  size: number;
  dark(row: number, col: number): boolean;
}

function checkOptions(options: QrOptions): { errorCorrection: ErrorCorrection; margin: number } {
  const errorCorrection = options.errorCorrection ?? "M";
  const margin = options.margin ?? 4;
  if (!["L", "M", "Q", "H"].includes(errorCorrection)) {
    throw new TypeError(`errorCorrection must be L, M, Q or H; got ${errorCorrection}`);
  }
  if (!Number.isInteger(margin) || margin < 0 || margin > 16) {
    throw new TypeError(`margin must be a whole number from 0 to 16; got ${margin}`);
  }
  return { errorCorrection, margin };
}

export function qrMatrix(text: string, options: QrOptions = {}): QrMatrix {
  if (typeof text !== "string" || text.length === 0) throw new TypeError("text must be non-empty");
  const { errorCorrection } = checkOptions(options);
  const code = QRCode.create(text, { errorCorrectionLevel: errorCorrection });
  const { size, data } = code.modules;
  return { version: code.version, size, dark: (row, col) => data[row * size + col] === 1 };
}

const RESET = "\x1b[0m";
const BLACK_ON_WHITE = "\x1b[30;47m";

/**
 * The code as text, ⌈(size + 2·margin) / 2⌉ rows of size + 2·margin characters, each row ending in
 * a newline. `color` defaults to whether stdout is a TTY.
 */
export function renderQrTerminal(
  text: string,
  options: QrOptions & { color?: boolean } = {},
): string {
  const { margin } = checkOptions(options);
  const color = options.color ?? process.stdout.isTTY === true;
  const matrix = qrMatrix(text, options);
  const span = matrix.size + 2 * margin;
  const dark = (row: number, col: number) => {
    const r = row - margin;
    const c = col - margin;
    return r >= 0 && c >= 0 && r < matrix.size && c < matrix.size && matrix.dark(r, c);
  };
  const lines: string[] = [];
  for (let row = 0; row < span; row += 2) {
    let line = "";
    for (let col = 0; col < span; col++) {
      const top = dark(row, col);
      const bottom = row + 1 < span && dark(row + 1, col);
      line += top ? (bottom ? "█" : "▀") : bottom ? "▄" : " ";
    }
    lines.push(color ? `${BLACK_ON_WHITE}${line}${RESET}` : line);
  }
  return `${lines.join("\n")}\n`;
}

/** PNG bytes; `scale` pixels per module (default 8). */
export async function qrPng(
  text: string,
  options: QrOptions & { scale?: number } = {},
): Promise<Buffer> {
  const { errorCorrection, margin } = checkOptions(options);
  const scale = options.scale ?? 8;
  if (!Number.isInteger(scale) || scale < 1 || scale > 64) {
    throw new TypeError("scale must be a whole number from 1 to 64");
  }
  return QRCode.toBuffer(text, {
    type: "png",
    errorCorrectionLevel: errorCorrection,
    margin,
    scale,
  });
}

/** An SVG document whose viewBox counts modules (quiet zone included). */
export async function qrSvg(text: string, options: QrOptions = {}): Promise<string> {
  const { errorCorrection, margin } = checkOptions(options);
  return QRCode.toString(text, { type: "svg", errorCorrectionLevel: errorCorrection, margin });
}

async function writePrivate(path: string, data: string | Buffer): Promise<void> {
  const file = await open(path, "w", 0o600);
  try {
    // A file that existed keeps its old mode on open; narrow it before any secret is written.
    await file.chmod(0o600);
    await file.writeFile(data);
  } finally {
    await file.close();
  }
}

export async function writeQrPng(
  path: string,
  text: string,
  options: QrOptions & { scale?: number } = {},
): Promise<void> {
  await writePrivate(path, await qrPng(text, options));
}

export async function writeQrSvg(
  path: string,
  text: string,
  options: QrOptions = {},
): Promise<void> {
  await writePrivate(path, await qrSvg(text, options));
}
