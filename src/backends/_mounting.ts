/**
 * Internal: what the backends that mount (overlay, aufs) share: the view of a
 * layer without parents, and removing a per-layer dir crash-safely.
 *
 * @module
 */

import type { BindMountPlan, NoMountPlan } from "../mount/plan.ts";
import type { LayerMountInput } from "./types.ts";

/**
 * A layer without parents is its own view. A read-write one is handed out as
 * its `diff/<id>`; a read-only one gets a read-only bind mount of it on
 * `mnt/<id>`, so an image layer is never writable through its view.
 */
export function baseView(input: LayerMountInput): NoMountPlan | BindMountPlan {
  const { root, id } = input;
  if (input.readWrite) return { kind: "none", target: `${root}/diff/${id}` };
  return {
    kind: "bind",
    source: `${root}/diff/${id}`,
    target: `${root}/mnt/${id}`,
    readOnly: true,
    nosuid: true,
    nodev: true,
  };
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

/** Removes a file or symlink; absent is fine. */
export async function removeEntry(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** Names in `dir` (sorted); a missing dir has none. */
export async function entryNames(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name)
      .sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}
