/**
 * Internal: what the backends that mount (overlay, aufs) share: the view of a
 * layer without parents (and the store's dir helpers, re-exported).
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

export { entryNames, exists, removeDir, removeEntry } from "../_fs.ts";
