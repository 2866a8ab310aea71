/**
 * Internal: the few directory helpers the store, its backends and `check`
 * share (each absent-is-fine, as crash recovery needs).
 *
 * @module
 */

/**
 * Names in `dir`, sorted; a missing dir has none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { entryNames } from "./_fs.ts";
 * assert.deepEqual(await entryNames("/no/such/dir"), []);
 * ```
 */
export async function entryNames(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name)
      .sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/**
 * Whether an entry is at `path` (a symlink counts as itself: not followed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exists } from "./_fs.ts";
 * assert.equal(await exists("/"), true);
 * assert.equal(await exists("/no/such/entry"), false);
 * ```
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Whether `path` is a directory itself (not followed through a symlink).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isDirectory } from "./_fs.ts";
 * assert.equal(await isDirectory("/"), true);
 * assert.equal(await isDirectory("/proc/self/status"), false);
 * assert.equal(await isDirectory("/no/such/entry"), false);
 * ```
 */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Removes a file or symlink; absent is fine. */
export async function removeEntry(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** Renames `path` to `<path>-removing`, then deletes it; absent is fine. */
export async function removeDir(path: string): Promise<void> {
  try {
    await Deno.rename(path, `${path}-removing`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  await Deno.remove(`${path}-removing`, { recursive: true });
}
