/** The attempt store in memory passes the AttemptStore compliance suite. */
import { MemoryAttemptStore } from "../../src/server/distribution/verification/memory-attempt-store.js";
import { attemptStoreCompliance } from "./attempt-store-compliance.js";

attemptStoreCompliance("memory", async (limits) => ({
  store: new MemoryAttemptStore(limits),
  cleanup: async () => {},
}));
