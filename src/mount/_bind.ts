/**
 * Internal: read-only bind mounts, the view of a read-only layer without
 * parents. mount(2) cannot make a bind mount read-only in one call (the
 * kernel ignores MS_RDONLY on the first MS_BIND), so it is a bind followed by
 * a `MS_REMOUNT|MS_BIND|MS_RDONLY` of that mount alone; if the remount
 * fails the bind is detached, so a writable view never stays behind. The
 * kernel ignores the filesystem type of both calls, so it is "".
 *
 * @module
 */

import { MNT, MS, umount2 } from "../sys/mount_linux.ts";
import type { BindMountPlan, MountCall } from "./plan.ts";

/**
 * The two mount(2) calls of a bind plan, as data.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bindCalls } from "./_bind.ts";
 * const calls = bindCalls({
 *   kind: "bind", source: "/s/diff/a", target: "/s/mnt/a", readOnly: true, nosuid: true, nodev: true,
 * });
 * assert.equal(calls.length, 2);
 * assert.equal(calls[0].source, "/s/diff/a");
 * ```
 */
export function bindCalls(plan: BindMountPlan): MountCall[] {
  const extra = (plan.nosuid ? MS.NOSUID : 0) | (plan.nodev ? MS.NODEV : 0);
  return [
    {
      source: plan.source,
      target: plan.target,
      fstype: "",
      flags: MS.BIND | extra,
      data: "",
    },
    {
      source: "none",
      target: plan.target,
      fstype: "",
      flags: MS.REMOUNT | MS.BIND | MS.RDONLY | extra,
      data: "",
    },
  ];
}

/** Performs a bind plan; the first failing call is thrown, after detaching a half-made mount. */
export function performBind(
  plan: BindMountPlan,
  perform: (c: MountCall) => void,
): void {
  const [bind, remount] = bindCalls(plan);
  perform(bind);
  try {
    perform(remount);
  } catch (e) {
    try {
      umount2(plan.target, MNT.DETACH | MNT.NOFOLLOW);
    } catch { /* already gone */ }
    throw e;
  }
}

/** Why the mount at `plan.target` is not a read-only view of `plan.source`, or undefined. */
export function bindMismatch(
  plan: BindMountPlan,
  mountOptions: string[],
): string | undefined {
  if (!mountOptions.includes("ro")) return "the bind mount is not read-only";
  const a = Deno.statSync(plan.target);
  const b = Deno.statSync(plan.source);
  if (a.ino !== b.ino || a.dev !== b.dev) {
    return `${plan.target} does not show ${plan.source}`;
  }
  return undefined;
}
