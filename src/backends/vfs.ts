/**
 * The vfs backend: no union filesystem at all. Each layer's `diff/<id>`
 * starts as a full copy of its parent (reflinked where the filesystem can),
 * so the view is the diff dir itself. Works without privileges. It cannot
 * make a read-only layer's view read-only: the view is the layer's own
 * directory, writable by whoever owns the store.
 *
 * @module
 */

import { vfsCodec } from "../archive/whiteout/vfs.ts";
import type { NoMountPlan } from "../mount/plan.ts";
import type { Backend, LayerMountInput } from "./types.ts";

/**
 * Plans a vfs view: always the layer's own directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planVfsMount } from "./vfs.ts";
 * const plan = planVfsMount({ root: "/s", id: "a", parents: ["b"], readWrite: true });
 * assert.deepEqual(plan, { kind: "none", target: "/s/diff/a" });
 * ```
 */
export function planVfsMount(input: LayerMountInput): NoMountPlan {
  return { kind: "none", target: `${input.root}/diff/${input.id}` };
}

/**
 * The vfs backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { vfsBackend } from "./vfs.ts";
 * assert.equal(vfsBackend.capabilities.copiesParent, true);
 * assert.equal(vfsBackend.capabilities.mounts, false);
 * ```
 */
export const vfsBackend: Backend<"vfs"> = {
  name: "vfs",
  summary:
    "no mounts: each layer starts as a full copy of its parent (reflinks where the fs has them)",
  whiteoutFormat: "vfs",
  whiteoutCodec: () => vfsCodec,
  capabilities: {
    mounts: false,
    copiesParent: true,
    readOnlyViews: false,
    maxDepth: Number.POSITIVE_INFINITY,
  },
  requirements: { unsuitableBackingFs: [], needsDType: false },
  ownDirs: [],
  settingsAtInit: () => ({}),
  statusRows: () => [["mount api", "none (full copies)"]],
  layerPaths: () => ({}),
  prepareLayer: () => Promise.resolve(),
  removeLayer: () => Promise.resolve(),
  leftovers: () => Promise.resolve([]),
  missingEntries: () => Promise.resolve([]),
  restoreEntries: () => Promise.resolve(),
  planMount: planVfsMount,
};
