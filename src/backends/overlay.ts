/**
 * The overlay backend: kernel overlayfs, the layer's diff dir as upper dir,
 * its parents' diff dirs as lower dirs (nearest first), `nosuid,nodev`.
 *
 * @module
 */

import type { OverlayMountPlan } from "../mount/plan.ts";
import type { NoMountPlan } from "../mount/plan.ts";
import { shortLinkName } from "../store/layout.ts";
import type { Backend, LayerMountInput } from "./types.ts";

/**
 * Plans a layer's overlay view. A layer without parents is its own view (no
 * mount), as Docker's drivers do.
 *
 * @example
 * ```ts
 * import { planOverlayMount } from "./overlay.ts";
 * const plan = planOverlayMount({ root: "/s", id: "app", parents: ["base"], readWrite: true });
 * console.log(plan); // { kind: "overlay", target: "/s/mnt/app", lowerdirs: ["/s/diff/base"], ... }
 * ```
 */
export function planOverlayMount(
  input: LayerMountInput,
): OverlayMountPlan | NoMountPlan {
  const { root, id, parents } = input;
  if (parents.length === 0) {
    return { kind: "none", target: `${root}/diff/${id}` };
  }
  const plan: OverlayMountPlan = {
    kind: "overlay",
    target: `${root}/mnt/${id}`,
    lowerdirs: parents.map((p) => `${root}/diff/${p}`),
    upperdir: `${root}/diff/${id}`,
    workdir: `${root}/work/${id}`,
    readOnly: !input.readWrite,
    nosuid: true,
    nodev: true,
  };
  if (input.mountLabel) plan.mountLabel = input.mountLabel;
  if (input.userXattr) plan.userXattr = true;
  plan.short = {
    cwd: root,
    lowerdirs: parents.map((p) => `l/${shortLinkName(p)}`),
    upperdir: `diff/${id}`,
    workdir: `work/${id}`,
  };
  return plan;
}

/**
 * The overlay backend.
 *
 * @example
 * ```ts
 * import { overlayBackend } from "./overlay.ts";
 * console.log(overlayBackend.whiteoutFormat); // overlay
 * ```
 */
export const overlayBackend: Backend = {
  name: "overlay",
  whiteoutFormat: "overlay",
  copiesParent: false,
  needsWorkDir: true,
  planMount: planOverlayMount,
};
