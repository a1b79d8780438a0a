/** requesters.json in a server's data folder passes the RequesterStore compliance suite. */
import { FileRequesterStore } from "../../src/server/requesters.js";
import { tempDir } from "../helpers/ceremony.js";
import { requesterStoreCompliance } from "./requester-store-compliance.js";

requesterStoreCompliance("requesters.json", async () => {
  const dir = await tempDir();
  return { store: new FileRequesterStore(dir.path), cleanup: () => dir.remove() };
});
