/**
 * Ctrl-C (SIGINT) and SIGTERM. A one-shot command ends at once with 130 (SIGINT) or 143
 * (SIGTERM). A long-running one (server, contributor) asks for the next signal with
 * `nextStopSignal()`, stops cleanly (ports closed, store lock released), and then ends with 130
 * after Ctrl-C, 0 after SIGTERM (a service manager's ordinary stop). A second signal while it is
 * stopping ends the process at once.
 */
import { ExitStatus } from "./exit-status.js";

export type StopSignal = "SIGINT" | "SIGTERM";

let waiter: ((signal: StopSignal) => void) | undefined;

function onSignal(signal: StopSignal): void {
  const wake = waiter;
  waiter = undefined;
  if (wake) wake(signal);
  else process.exit(signal === "SIGINT" ? ExitStatus.INTERRUPTED : ExitStatus.TERMINATED);
}

/** Called once by the executable, before any command runs. */
export function installSignalHandlers(): void {
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

/**
 * The next SIGINT or SIGTERM, handed to the caller instead of ending the process. `release()`
 * gives the signals back (a signal after it ends the process at once).
 */
export function nextStopSignal(): { signal: Promise<StopSignal>; release(): void } {
  let mine: ((signal: StopSignal) => void) | undefined;
  const signal = new Promise<StopSignal>((resolve) => {
    mine = resolve;
  });
  waiter = mine;
  return {
    signal,
    release() {
      if (waiter === mine) waiter = undefined;
    },
  };
}
