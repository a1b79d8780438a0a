/**
 * A logger that writes every event twice, as a JSON line and as a pretty line, into memory, so a
 * test can check what both formats would have printed (the fuzz suites check that no line holds a
 * raw control character a peer chose).
 */
import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/logging.js";

export function captureBothFormats(): { logger: Logger; take(): string[] } {
  let chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const json = createLogger({ format: "json", level: "debug", stream: sink });
  const pretty = createLogger({ format: "pretty", level: "debug", stream: sink });
  const both =
    (level: "debug" | "info" | "warn" | "error") => (fields: object, message: string) => {
      json[level]({ ...fields }, message);
      pretty[level]({ ...fields }, message);
    };
  const logger: Logger = {
    debug: both("debug"),
    info: both("info"),
    warn: both("warn"),
    error: both("error"),
    child: () => logger,
    isLevelEnabled: () => true,
  };
  return {
    logger,
    take() {
      const lines = chunks.join("").split("\n").filter(Boolean);
      chunks = [];
      return lines;
    },
  };
}
