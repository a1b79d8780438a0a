import { MemoryKeyStore } from "../../src/store/memory.js";
import { keyStoreCompliance } from "./compliance.js";

keyStoreCompliance("memory", async () => ({
  store: new MemoryKeyStore(),
  cleanup: async () => {},
}));
