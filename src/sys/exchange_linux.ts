/**
 * Atomic directory swap with renameat2(RENAME_EXCHANGE): how the store
 * replaces a published layer's content in one step.
 *
 * @module
 */

import { check, cstr, libc } from "./libc_linux.ts";
import { AT_FDCWD } from "./fd_linux.ts";

const RENAME_EXCHANGE = 2;

/**
 * Atomically exchanges the paths `a` and `b` (both must exist).
 *
 * @throws {SysError} e.g. EINVAL on filesystems without RENAME_EXCHANGE.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exchangePaths } from "./exchange_linux.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/new`, "new");
 * await Deno.writeTextFile(`${dir}/app`, "old");
 * exchangePaths(`${dir}/new`, `${dir}/app`);
 * assert.equal(await Deno.readTextFile(`${dir}/app`), "new");
 * assert.equal(await Deno.readTextFile(`${dir}/new`), "old");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function exchangePaths(a: string, b: string): void {
  check(
    libc().renameat2(AT_FDCWD, cstr(a), AT_FDCWD, cstr(b), RENAME_EXCHANGE),
    "renameat2 RENAME_EXCHANGE",
    b,
  );
}
