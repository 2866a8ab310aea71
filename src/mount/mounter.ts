/**
 * The seam between the store and whoever may mount: the store asks a
 * {@link Mounter} to mount a layer's plan. As root the {@link directMounter}
 * performs it in-process; otherwise the privileged helper plugs in its own
 * Mounter, which ignores the plan it is given and re-plans from the store's
 * on-disk metadata (see `planLayerMount`), never trusting the caller.
 *
 * @module
 */

import type { MountPlan } from "./plan.ts";
import { performMountPlan, unmountTarget } from "./perform.ts";

/**
 * Mounts and unmounts layer views for a store.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Mounter } from "./mounter.ts";
 * const log: string[] = [];
 * const logging: Mounter = {
 *   mount: (root, id, plan) => Promise.resolve(void log.push(`mount ${root} ${id} ${plan.kind}`)),
 *   unmount: (root, id, target) => Promise.resolve(void log.push(`umount ${id} ${target}`)),
 * };
 * await logging.mount("/s", "app", { kind: "bind", source: "/s/diff/app", target: "/s/mnt/app", readOnly: true, nosuid: true, nodev: true });
 * await logging.unmount("/s", "app", "/s/mnt/app");
 * assert.deepEqual(log, ["mount /s app bind", "umount app /s/mnt/app"]);
 * ```
 */
export interface Mounter {
  /** Mounts layer `id` of the store at `root` as `plan` says (never called for `none` plans). */
  mount(root: string, id: string, plan: MountPlan): Promise<void>;
  /** Unmounts layer `id`'s view at `target`; not mounted is not an error. */
  unmount(root: string, id: string, target: string): Promise<void>;
}

/**
 * The in-process Mounter (needs root / CAP_SYS_ADMIN): performs plans with
 * `performMountPlan` and verifies them from mountinfo.
 *
 * @example
 * ```ts ignore
 * import { openStore } from "../store/store.ts";
 * import { directMounter } from "./mounter.ts";
 * const store = await openStore({ root: "/var/lib/layerfs", mounter: directMounter });
 * ```
 */
export const directMounter: Mounter = {
  mount: (_root, _id, plan) => performMountPlan(plan),
  unmount: (_root, _id, target) => Promise.resolve(unmountTarget(target)),
};
