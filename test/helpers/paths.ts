/** Paths from compiled tests (dist/test/...) back to the repository. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The repository root: compiled helpers live in dist/test/helpers/. */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The compiled CLI entry point. */
export const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

export function readVector<T>(relative: string): T {
  return JSON.parse(readFileSync(`${REPO_ROOT}test/vectors/${relative}`, "utf8")) as T;
}
