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

interface Group {
  ids: string[];
  durable: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

export class TurnConsumes {
  readonly #write: (body: LogBody, hooks: LineHooks) => Promise<void>;
  readonly #undo: (id: string) => void;
  /** This turn's consumptions by time, in the order their first one was made. */
  #groups = new Map<string, Group>();
  #scheduled = false;

  /**
   * `write`: appends a line (after the turn's claims); `undo`: takes a consumption back in the
   * record core when its line failed.
   */
  constructor(
    write: (body: LogBody, hooks: LineHooks) => Promise<void>,
    undo: (id: string) => void,
  ) {
    this.#write = write;
    this.#undo = undo;
  }

  /** Queues record `id`'s consumption at `at`; resolves once its line is durable. */
  add(id: string, at: string): Promise<void> {
    let group = this.#groups.get(at);
    if (!group) {
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const durable = new Promise<void>((yes, no) => {
        resolve = yes;
        reject = no;
      });
      group = { ids: [], durable, resolve, reject };
      this.#groups.set(at, group);
    }
    group.ids.push(id);
    const { durable } = group;
    if (group.ids.length >= MAX_CONSUMES_PER_LINE) {
      this.flush();
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.flush();
      });
    }
    return durable;
  }

  /** Writes the queued consumptions now, one line per time. */
  flush(): void {
    if (this.#groups.size === 0) return;
    const groups = this.#groups;
    this.#groups = new Map();
    for (const [at, group] of groups) {
      const { ids } = group;
      const body = ids.length === 1 ? consumeBody(ids[0]!, at) : consumesBody(at, ids);
      this.#write(body, {
        onFailed: () => {
          for (const id of ids) this.#undo(id);
        },
      }).then(group.resolve, group.reject);
    }
  }
}
