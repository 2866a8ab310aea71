/**
 * The vfs backend: no union filesystem at all. Each layer's `diff/<id>`
 * starts as a full copy of its parent (reflinked where the filesystem can),
 * so the view is the diff dir itself. Works without privileges.
 *
 * @module
 */

import type { NoMountPlan } from "../mount/plan.ts";
import type { Backend, LayerMountInput } from "./types.ts";

/**
 * Plans a vfs view: always the layer's own directory.
 *
 * @example
 * ```ts
 * import { planVfsMount } from "./vfs.ts";
 * console.log(planVfsMount({ root: "/s", id: "a", parents: ["b"], readWrite: true }).target);
 * // /s/diff/a
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
 * import { vfsBackend } from "./vfs.ts";
 * console.log(vfsBackend.copiesParent); // true
 * ```
 */
export const vfsBackend: Backend = {
  name: "vfs",
  whiteoutFormat: "vfs",
  copiesParent: true,
  needsWorkDir: false,
  planMount: planVfsMount,
};
