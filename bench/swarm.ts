/**
 * A swarm of contributors in one process, for the round benchmark: reads {url, tokens, root} as
 * JSON on stdin, starts one contributor per token (each with its own data folder and WebSocket
 * connection), prints "ready" once all have joined, and runs until stdin closes.
 */
import { join } from "node:path";
import { Contributor } from "../src/client/contributor.js";
import { loadOrCreateContributorState } from "../src/client/contributor-state.js";
import { EntropyPool } from "../src/client/entropy.js";
import { PinStore } from "../src/client/pins.js";

interface SwarmInput {
  url: string;
  tokens: string[];
  root: string;
}

/** The first line of standard input; the stream stays open so its end can stop the swarm. */
function readStdinLine(): Promise<string> {
  process.stdin.setEncoding("utf8");
  let data = "";
  return new Promise((resolve) => {
    const onData = (chunk: string) => {
      data += chunk;
      const end = data.indexOf("\n");
      if (end < 0) return;
      process.stdin.off("data", onData);
      resolve(data.slice(0, end));
    };
    process.stdin.on("data", onData);
  });
}

const input = JSON.parse(await readStdinLine()) as SwarmInput;
const contributors = await Promise.all(
  input.tokens.map(async (token, i) => {
    const dataDir = join(input.root, `c${i}`);
    const state = await loadOrCreateContributorState(dataDir);
    const contributor = new Contributor({
      serverUrl: input.url,
      state,
      entropy: new EntropyPool(new Uint8Array(0), "os"),
      pins: new PinStore(dataDir),
      token,
      name: `c${i}`,
      reconnect: false,
    });
    await contributor.start();
    return contributor;
  }),
);
process.stdout.write("ready\n");
process.stdin.on("data", () => {});
process.stdin.on("end", async () => {
  await Promise.all(contributors.map((c) => c.stop()));
  process.exit(0);
});
