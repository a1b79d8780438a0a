import { randomBytes } from "node:crypto";
import { after } from "node:test";
import { PostgresKeyStore } from "../../src/store/postgres.js";
import { startPostgres } from "../helpers/postgres.js";
import { keyStoreCompliance } from "./compliance.js";

const cluster = await startPostgres();
after(() => cluster.stop());

keyStoreCompliance("postgres", async () => {
  const url = await cluster.createDatabase();
  const storeKey = randomBytes(32);
  const make = () => new PostgresKeyStore({ url, storeKey });
  return { store: make(), cleanup: async () => {}, reopen: async () => make() };
});
