/**
 * Internal: Deno's file errors name no path ("Is a directory (os error
 * 21)", "No space left on device (os error 28)"), and our own syscalls'
 * SysErrors only the call; every file a command opens, reads or writes is
 * wrapped here, naming the path and what to do. Light on purpose: the CLI's
 * entry loads it before any command (no FFI, no store code).
 *
 * @module
 */

import { LayerfsError } from "./errors.ts";
import { ioAdvice } from "./sys/errno.ts";

/** What Deno would have said, for the errors our own syscalls give. */
const SYS_TEXT: Record<string, string> = {
  ENOENT: "No such file or directory",
  ENOTDIR: "Not a directory",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  EROFS: "Read-only file system",
  ENOSPC: "No space left on device",
  EDQUOT: "Disk quota exceeded",
};

/**
 * `e` as a {@link LayerfsError} that names `path` and says what to do;
 * LayerfsErrors, broken pipes (the CLI ends quietly on those) and non-errors
 * pass unchanged. Deno's file errors name no path ("Is a directory (os
 * error 21)"), so every file the commands open, read or write is wrapped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { namedFsError } from "./_fs_error.ts";
 * const e = await Deno.readFile("/no/such/file").catch((e) => namedFsError(e, "read", "/no/such/file"));
 * assert.match((e as Error).message, /^Cannot read \/no\/such\/file: .*; check the path$/);
 * ```
 */
export function namedFsError(
  e: unknown,
  action: string,
  path: string,
): unknown {
  if (
    e instanceof LayerfsError || !(e instanceof Error) ||
    e instanceof Deno.errors.BrokenPipe ||
    (e as { code?: string }).code === "EPIPE"
  ) {
    return e;
  }
  const code = (e as { code?: string }).code ?? "";
  // Deno's message (or a SysError's errno name), without "(os error N)" or
  // any path it repeats.
  // A SysError (our own syscalls) carries only the errno's name.
  const what = e.name === "SysError"
    ? (SYS_TEXT[code] ?? code)
    : e.message.replace(/\s*\(os error \d+\).*$/, "");
  const advice = ioAdvice(code) ??
    (code === "EISDIR"
      ? "it is a directory; pass a file"
      : code === "ENOENT" || code === "ENOTDIR"
      ? "check the path"
      : code === "EACCES" || code === "EPERM"
      ? "check its permissions"
      : "check the path and the file system");
  return new LayerfsError(`Cannot ${action} ${path}: ${what}; ${advice}`, {
    cause: e,
  });
}
