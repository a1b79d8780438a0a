/**
 * Lines gathered over one turn of the event loop: items queued in the same turn under the same
 * key are written together (one line, one MAC) after the turn, or earlier when the store flushes
 * before writing any other line, so the file keeps every event in order. Each `add` resolves once
 * the line holding its item is durable, and rejects if that line failed.
 *
 * The `key_store` file uses it for consumptions (turn-consumes.ts: one `consumes` line per time)
 * and for records (file.ts: one `records` line per round header).
 */

interface Group<T> {
  items: T[];
  durable: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

export class TurnLines<T> {
  readonly #write: (items: T[]) => Promise<void>;
  readonly #most: number;
  /** This turn's items by key, in the order each key's first item came. */
  #groups = new Map<string, Group<T>>();
  #scheduled = false;

  /**
   * `write`: writes one group's items (1 to `most`, in the order added) as a line and resolves
   * once it is durable; `most`: the most items one line takes (a full group flushes the queue).
   */
  constructor(write: (items: T[]) => Promise<void>, most: number) {
    this.#write = write;
    this.#most = most;
  }

  /** Queues `item` under `key`; resolves once the line holding it is durable. */
  add(key: string, item: T): Promise<void> {
    let group = this.#groups.get(key);
    if (!group) {
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const durable = new Promise<void>((yes, no) => {
        resolve = yes;
        reject = no;
      });
      group = { items: [], durable, resolve, reject };
      this.#groups.set(key, group);
    }
    group.items.push(item);
    const { durable } = group;
    if (group.items.length >= this.#most) {
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

  /** Writes every queued group now, one line each, in the order their first item came. */
  flush(): void {
    if (this.#groups.size === 0) return;
    const groups = this.#groups;
    this.#groups = new Map();
    for (const group of groups.values()) {
      this.#write(group.items).then(group.resolve, group.reject);
    }
  }
}
