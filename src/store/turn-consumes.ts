/**
 * The `key_store` file's consumptions, one line per event-loop turn: the records consumed in one
 * turn at the same time go into one `consumes` line (log-format.ts), a lone one into a `consume`
 * line as before. Each consumption is decided in the record core at once (file.ts); its line is
 * written after the turn, or before any other line (the store flushes this queue first, after
 * the turn's claims), so the file keeps every event about a record in order. Every `consume`
 * call still resolves only once its line is durable.
 */

import type { LineHooks } from "./leases.js";
import { consumeBody, consumesBody, type LogBody, MAX_CONSUMES_PER_LINE } from "./log-format.js";
import { TurnLines } from "./turn-lines.js";

export class TurnConsumes {
  readonly #lines: TurnLines<{ id: string; at: string }>;

  /**
   * `write`: appends a line (after the turn's claims); `undo`: takes a consumption back in the
   * record core when its line failed.
   */
  constructor(
    write: (body: LogBody, hooks: LineHooks) => Promise<void>,
    undo: (id: string) => void,
  ) {
    this.#lines = new TurnLines((items) => {
      const { at } = items[0]!;
      const ids = items.map((item) => item.id);
      const body = ids.length === 1 ? consumeBody(ids[0]!, at) : consumesBody(at, ids);
      return write(body, {
        onFailed: () => {
          for (const id of ids) undo(id);
        },
      });
    }, MAX_CONSUMES_PER_LINE);
  }

  /** Queues record `id`'s consumption at `at`; resolves once its line is durable. */
  add(id: string, at: string): Promise<void> {
    return this.#lines.add(at, { id, at });
  }

  /** Writes the queued consumptions now, one line per time. */
  flush(): void {
    this.#lines.flush();
  }
}
