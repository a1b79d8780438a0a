import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "../src/logging.js";
import { hasUnprintable, printable, printableJson } from "../src/printable.js";
import { decodeMessage } from "../src/protocol/messages.js";
import { PROTOCOL_VERSION } from "../src/protocol/version.js";

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, text: () => chunks.join("") };
}

// What a peer would put in a field name to forge a line or repaint a terminal.
const HOSTILE = "x\n12:00:00 ERROR forged line\u001b[31m\r\u2028\u202e\u0085";

test("a pretty log line escapes control characters in the message, field names and values", () => {
  const out = capture();
  const logger = createLogger({ format: "pretty", stream: out.stream });
  logger.warn(
    { [HOSTILE]: HOSTILE, plain: "word", nested: { k: HOSTILE } },
    `rejected: ${HOSTILE}`,
  );
  const text = out.text();
  assert.equal(text.split("\n").length, 2, "exactly one line and its newline");
  assert.ok(text.endsWith("\n"));
  assert.equal(hasUnprintable(text), false);
  assert.match(text, /plain=word/);
});

test("a JSON log line carries a peer's text escaped and intact", () => {
  const out = capture();
  createLogger({ format: "json", stream: out.stream }).warn({ name: HOSTILE }, HOSTILE);
  const line = out.text();
  assert.equal(line.split("\n").length, 2);
  assert.equal(JSON.parse(line).name, HOSTILE);
});

test("printable escapes exactly the characters that change how a line prints", () => {
  assert.equal(printable("abc é 日本"), "abc é 日本");
  assert.equal(printable("a\nb"), "a\\u{a}b");
  assert.equal(printable("\u001b[2J"), "\\u{1b}[2J");
  assert.equal(printable("back\\slash"), "back\\\\slash");
  assert.equal(printable("\u202e"), "\\u{202e}");
  assert.equal(printable("\u009b"), "\\u{9b}");
  assert.equal(printableJson("a\u2028b\u0085"), '"a\\u2028b\\u0085"');
  assert.equal(JSON.parse(printableJson("a\u2028b\u0085")), "a\u2028b\u0085");
});

test("a schema error names a hostile field escaped and cut short", () => {
  const frame = JSON.stringify({
    type: "admin.status",
    v: PROTOCOL_VERSION,
    requestId: "r1",
    [HOSTILE]: 1,
  });
  assert.throws(
    () => decodeMessage(frame),
    (error: Error) => {
      assert.equal(hasUnprintable(error.message) || error.message.includes("\n"), false);
      return true;
    },
  );
  const long = JSON.stringify({
    type: "admin.status",
    v: 1,
    requestId: "r1",
    ["y".repeat(5000)]: 1,
  });
  assert.throws(
    () => decodeMessage(long),
    (error: Error) => error.message.length < 300,
  );
});
