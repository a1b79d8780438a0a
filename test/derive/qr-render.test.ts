import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { PNG } from "pngjs";
import {
  qrMatrix,
  qrPng,
  qrSvg,
  renderQrTerminal,
  writeQrPng,
  writeQrSvg,
} from "../../src/cli/qr.js";

// No QR decoder is at hand, so each renderer's output is read back into a module matrix and
// compared with the matrix the encoder produced: a renderer that draws anything else fails.

const URI =
  "otpauth://totp/dkeygen:user?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=dkeygen" +
  "&algorithm=SHA1&digits=6&period=30";

/** The expected picture: the matrix inside a quiet zone of `margin` light modules. */
function picture(text: string, margin: number): boolean[][] {
  const m = qrMatrix(text);
  const span = m.size + 2 * margin;
  return Array.from({ length: span }, (_, r) =>
    Array.from({ length: span }, (_, c) => {
      const row = r - margin;
      const col = c - margin;
      return row >= 0 && col >= 0 && row < m.size && col < m.size && m.dark(row, col);
    }),
  );
}

test("the QR version and size follow ISO/IEC 18004 (size = 17 + 4·version)", () => {
  const m = qrMatrix(URI);
  assert.equal(m.size, 17 + 4 * m.version);
  const longer = qrMatrix(URI + "x".repeat(200));
  assert.ok(longer.version > m.version);
});

test("the terminal drawing has ⌈(size + 8) / 2⌉ rows of half blocks that read back to the code", () => {
  for (const margin of [4, 2]) {
    const expected = picture(URI, margin);
    const span = expected.length;
    const text = renderQrTerminal(URI, { color: false, margin });
    const lines = text.slice(0, -1).split("\n");
    assert.equal(lines.length, Math.ceil(span / 2));
    const read: boolean[][] = Array.from({ length: 2 * lines.length }, () => []);
    lines.forEach((line, i) => {
      const chars = [...line];
      assert.equal(chars.length, span);
      for (const ch of chars) {
        assert.ok(" ▀▄█".includes(ch), `unexpected character ${JSON.stringify(ch)}`);
        read[2 * i]!.push(ch === "█" || ch === "▀");
        read[2 * i + 1]!.push(ch === "█" || ch === "▄");
      }
    });
    assert.deepEqual(read.slice(0, span), expected);
  }
  const colored = renderQrTerminal(URI, { color: true });
  assert.ok(colored.startsWith("\x1b[30;47m"));
});

test("the PNG has the PNG signature, (size + 8)·scale pixels a side and the code's modules", async () => {
  const scale = 5;
  const png = await qrPng(URI, { scale });
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const expected = picture(URI, 4);
  const image = PNG.sync.read(png);
  assert.equal(image.width, expected.length * scale);
  assert.equal(image.height, expected.length * scale);
  for (let r = 0; r < expected.length; r++) {
    for (let c = 0; c < expected.length; c++) {
      const x = c * scale + 2;
      const y = r * scale + 2;
      const red = image.data[(y * image.width + x) * 4]!;
      assert.equal(red < 128, expected[r]![c], `module (${r}, ${c})`);
    }
  }
});

test("the SVG is well-formed XML whose path draws exactly the code's dark modules", async () => {
  const svg = await qrSvg(URI);
  assert.equal(XMLValidator.validate(svg), true);
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(svg);
  const expected = picture(URI, 4);
  const span = expected.length;
  assert.equal(doc.svg.viewBox, `0 0 ${span} ${span}`);
  const paths = Array.isArray(doc.svg.path) ? doc.svg.path : [doc.svg.path];
  const dark = paths.find((p: { stroke?: string }) => p.stroke !== undefined);
  assert.ok(dark, "a stroked path for the dark modules");
  const drawn: boolean[][] = Array.from({ length: span }, () => new Array(span).fill(false));
  let x = 0;
  let y = 0;
  for (const [, cmd, args] of (dark.d as string).matchAll(/([Mmh])([^Mmh]*)/g)) {
    const n = args!.trim().split(/[ ,]+/).map(Number);
    if (cmd === "M") [x, y] = [n[0]!, n[1]!];
    else if (cmd === "m") [x, y] = [x + n[0]!, y + n[1]!];
    else {
      for (let i = 0; i < n[0]!; i++) drawn[Math.floor(y)]![x + i] = true;
      x += n[0]!;
    }
  }
  assert.deepEqual(drawn, expected);
});

test("PNG and SVG files are written readable by their owner only", async () => {
  const dir = await mkdtemp(join(tmpdir(), "dkeygen-qr-"));
  try {
    const png = join(dir, "otp.png");
    const svg = join(dir, "otp.svg");
    await writeQrPng(png, URI);
    await writeQrSvg(svg, URI);
    assert.equal((await stat(png)).mode & 0o777, 0o600);
    assert.equal((await stat(svg)).mode & 0o777, 0o600);
    assert.equal((await readFile(png)).subarray(1, 4).toString(), "PNG");
    assert.match(await readFile(svg, "utf8"), /^<svg /);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("bad QR options are refused", () => {
  assert.throws(() => qrMatrix(""), TypeError);
  assert.throws(() => renderQrTerminal(URI, { margin: -1 }), TypeError);
  assert.throws(() => qrMatrix(URI, { errorCorrection: "X" as "L" }), TypeError);
});
