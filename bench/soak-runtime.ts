/**
 * The server runtime as the soak sees it (soak-hooks.ts sends every import of
 * src/server/runtime.js here): the same exports, with `startServer` also resolving `started`
 * with the RunningServer it returns. Nothing of the start itself changes.
 */
import {
  type RunningServer,
  type StartServerOptions,
  startServer as startRuntimeServer,
} from "../src/server/runtime.js";

export * from "../src/server/runtime.js";

let resolveStarted: (running: RunningServer) => void = () => {};

/** The first server started in this process. */
export const started = new Promise<RunningServer>((resolve) => {
  resolveStarted = resolve;
});

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const running = await startRuntimeServer(options);
  resolveStarted(running);
  return running;
}
