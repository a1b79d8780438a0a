/** JSON values, for data that crosses a process boundary (wire, key store, --json output). */
export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}
