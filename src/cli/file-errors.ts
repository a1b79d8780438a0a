/**
 * The one place where a failed file operation on a path the user gave (--out, --data-dir,
 * --secret-file, …) becomes a sentence: it names the flag and the path and says what to do,
 * instead of a raw `ENOENT: no such file or directory, open '…'`. Errors that are already a
 * DkeygenError (a file that is not what it must be) pass through unchanged. A file to write is
 * checked before any work (`checkOutputFile`), in the same words: a usage error then (exit 2), an
 * operational one (exit 1) when found while doing the work.
 */
import { constants, type Stats } from "node:fs";
import { access, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { DkeygenError, ErrorCodes, isDkeygenError } from "../errors.js";

/** What the command does with the path: reads a file, writes one, or keeps a folder. */
export type PathUse = "read" | "write" | "folder";

function sentence(use: PathUse, path: string, error: NodeJS.ErrnoException): string | undefined {
  const where = error.path !== undefined && error.path !== path ? ` (${error.path})` : "";
  switch (error.code) {
    case "ENOENT":
      if (use === "read") return "there is no such file; check the path.";
      if (use === "write")
        return `the folder ${dirname(path)} does not exist; create it first or give another path.`;
      return `a file it needs is missing${where}.`;
    case "EISDIR":
      return use === "folder"
        ? `a folder is in the way${where}.`
        : "that is a folder; give the path of a file.";
    case "ENOTDIR":
      return use === "folder"
        ? "that (or a folder above it) is a file, not a folder."
        : "a folder above it is a file, not a folder.";
    case "EEXIST":
      return use === "folder"
        ? "that (or a folder above it) is a file, not a folder."
        : "that file exists and is never replaced; remove it or give another path.";
    case "EACCES":
    case "EPERM":
      return `permission denied${where}; check the permissions of the file and its folders, or give another path.`;
    case "EROFS":
      return "the file system is read-only; give a path on a writable one.";
    case "ENOSPC":
    case "EDQUOT":
      return "the disk is full (or the quota reached); free some space.";
    case "ENAMETOOLONG":
      return "the path is too long.";
    case "ELOOP":
      return "the path has too many symbolic links (a loop?).";
    default:
      return undefined;
  }
}

/** Whether a failure at `failed` belongs to the user's `path`: that file, or inside that folder. */
function concerns(path: string, use: PathUse, failed: string | undefined): boolean {
  if (failed === undefined) return true;
  return failed === path || (use === "folder" && failed.startsWith(`${path}/`));
}

/**
 * `error` as a DkeygenError naming `flag` and `path`, when it is a file-system error of that path
 * (or, for a folder, of a file in it); also a DkeygenError whose cause is one (a module that said
 * "Cannot read … : EISDIR …"). Anything else is returned unchanged.
 */
export function fileError(flag: string, path: string, use: PathUse, error: unknown): unknown {
  const errno = (isDkeygenError(error) ? (error as { cause?: unknown }).cause : error) as
    | NodeJS.ErrnoException
    | undefined;
  if (typeof errno?.code !== "string" || !concerns(path, use, errno.path)) return error;
  // A module's own sentence names its file; a read error (EISDIR, …) often carries no path.
  if (isDkeygenError(error) && errno.path === undefined && !error.message.includes(path)) {
    return error;
  }
  const said = sentence(use, path, errno);
  if (said === undefined) return error;
  return new DkeygenError(ErrorCodes.OPERATIONAL, `${flag} ${path}: ${said}`, { cause: errno });
}

/** Runs `work` on a path the user gave; a file-system failure names the flag and the path. */
export async function onUserPath<T>(
  flag: string,
  path: string,
  use: PathUse,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw fileError(flag, path, use, error);
  }
}

/**
 * Checks, before any work (a round, a request, a derivation), that a file can be written at
 * `path`: not a folder, in a folder that exists and is writable, and, if it exists, writable and
 * (without `replace`) not there at all. A usage error otherwise (exit 2: nothing was done), in the
 * words `fileError` uses for the same mistake found while writing, so a command that makes a
 * secret never makes one it cannot save. The write itself still goes through `onUserPath`.
 */
export async function checkOutputFile(
  flag: string,
  path: string,
  options: { replace: boolean },
): Promise<void> {
  const refuse = (code: string | undefined): void => {
    const said =
      code === undefined ? undefined : sentence("write", path, { code } as NodeJS.ErrnoException);
    // An unusual failure (EIO, …) is left to the write, which reports it as it comes.
    if (said !== undefined) throw new DkeygenError(ErrorCodes.USAGE, `${flag} ${path}: ${said}`);
  };
  const codeOf = (error: unknown) => (error as NodeJS.ErrnoException).code;
  const file = resolve(path);
  let existing: Stats | undefined;
  try {
    existing = await stat(file);
  } catch (error) {
    if (codeOf(error) !== "ENOENT") return refuse(codeOf(error));
  }
  if (existing !== undefined) {
    if (existing.isDirectory()) return refuse("EISDIR");
    if (!options.replace) return refuse("EEXIST");
    return access(file, constants.W_OK).catch((error) => refuse(codeOf(error)));
  }
  const folder = await stat(dirname(file)).catch((error) => refuse(codeOf(error)));
  if (folder === undefined) return;
  if (!folder.isDirectory()) return refuse("ENOTDIR");
  await access(dirname(file), constants.W_OK).catch((error) => refuse(codeOf(error)));
}
