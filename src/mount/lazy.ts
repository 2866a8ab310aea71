/**
 * The mount entry points as `mod.ts` exports them, each loading the mount
 * code (mount syscalls, verification, mountinfo: ~0.1 MB of source) on its
 * first call, so that a process that imports `mod.ts` to apply a tar does
 * not load it at start-up (README "Start-up"). Every call is async anyway.
 *
 * @module
 */

import type { Mounter } from "./mounter.ts";
import type { PerformOptions } from "./perform.ts";
import type { MountPlan } from "./plan.ts";
import { loadModule } from "../_load_module.ts";

const performImpl = () =>
  loadModule<typeof import("./perform.ts")>(
    new URL("./perform.ts", import.meta.url),
  );
const mounterImpl = () =>
  loadModule<typeof import("./mounter.ts")>(
    new URL("./mounter.ts", import.meta.url),
  );

/**
 * Performs `plan` on `plan.target` and verifies the mount (see
 * `src/mount/perform.ts`). A `none` plan does nothing.
 *
 * @param plan What to mount.
 * @param options Directory fds to mount from (the helper's case).
 * @throws {MountError} with the errno name and the failing operation.
 *
 * @example A `none` plan mounts nothing
 * ```ts
 * import assert from "node:assert/strict";
 * import { performMountPlan } from "./lazy.ts";
 * const target = await Deno.makeTempDir();
 * await performMountPlan({ kind: "none", target });
 * assert.deepEqual([...Deno.readDirSync(target)], []);
 * await Deno.remove(target);
 * ```
 */
export async function performMountPlan(
  plan: MountPlan,
  options?: PerformOptions,
): Promise<void> {
  return (await performImpl()).performMountPlan(plan, options);
}

/**
 * Mounts in this process (it must be root): the default {@link Mounter}
 * as root. The same as `src/mount/mounter.ts`'s, loaded on first use.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { directMounter } from "./lazy.ts";
 * assert.equal(typeof directMounter.mount, "function");
 * await directMounter.mount("/s", "a", { kind: "none", target: "/s/diff/a" });
 * ```
 */
export const directMounter: Mounter = {
  mount: async (root, id, plan) =>
    (await mounterImpl()).directMounter.mount(root, id, plan),
  unmount: async (root, id, target) =>
    (await mounterImpl()).directMounter.unmount(root, id, target),
};
