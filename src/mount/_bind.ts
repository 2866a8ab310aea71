/**
 * Internal: read-only bind mounts, the view of a read-only layer without
 * parents. Made with the new mount API so the mount is read-only (and
 * nosuid, nodev) before it is attached anywhere: open_tree(OPEN_TREE_CLONE)
 * of the layer's dir, mount_setattr, move_mount onto `mnt/<id>`. mount(2)
 * would need a bind and then a read-only remount, leaving a moment in which
 * the view is writable. The store passes paths; the helper passes the fds
 * it opened and checked. The new mount is verified by its own mount id
 * (`_verify.ts`).
 *
 * @module
 */

import { MountError } from "../errors.ts";
import { AT_FDCWD, close } from "../sys/fd_linux.ts";
import { fstatx, statxAt } from "../sys/fs_walk_linux.ts";
import { SysError } from "../sys/libc_linux.ts";
import {
  cloneTree,
  MOUNT_ATTR,
  moveMount,
  setMountAttrs,
  ST,
} from "../sys/mount_linux.ts";
import type { MountInfoEntry } from "./mountinfo.ts";
import { verifyMountById, verifyNewMount } from "./_verify.ts";
import type { BindMountPlan } from "./plan.ts";

/** The layer's dir and the mount point, already opened and checked (the helper's). */
export interface BindFds {
  /** The layer's own dir (`diff/<id>`). */
  source: number;
  /** The mount point (`mnt/<id>`). */
  target: number;
}

/**
 * Performs a bind plan and returns the verified mountinfo entry (with
 * `verify` "id": verified by mount id, flags and inode, and undefined).
 *
 * @throws {MountError} naming the syscall; a mount that is not what was
 *   planned (not read-only, not the layer's dir, moved elsewhere) is detached.
 */
export function performBindPlan(
  plan: BindMountPlan,
  fds?: BindFds,
  verify: "mountinfo" | "id" = "mountinfo",
): MountInfoEntry | undefined {
  let mfd = -1;
  try {
    try {
      mfd = cloneTree(fds ? fds.source : plan.source);
      setMountAttrs(
        mfd,
        MOUNT_ATTR.RDONLY | (plan.nosuid ? MOUNT_ATTR.NOSUID : 0) |
          (plan.nodev ? MOUNT_ATTR.NODEV : 0),
      );
      moveMount(mfd, fds ? fds.target : plan.target);
    } catch (e) {
      if (!(e instanceof SysError)) throw e;
      throw new MountError(e.syscall, e.code, plan.target, e.message, {
        cause: e,
      });
    }
    if (verify === "id") {
      // The same checks as below, asked of the mount fd instead of mountinfo.
      verifyMountById(
        mfd,
        "bind",
        plan.target,
        {
          flags: ST.RDONLY | (plan.nosuid ? ST.NOSUID : 0) |
            (plan.nodev ? ST.NODEV : 0),
        },
        () => bindMismatch(plan, ["ro"], fds?.source),
      );
      return undefined;
    }
    return verifyNewMount(
      mfd,
      "bind",
      plan.target,
      (entry) => bindMismatch(plan, entry.mountOptions, fds?.source),
    );
  } finally {
    if (mfd >= 0) close(mfd);
  }
}

/**
 * Why the mount at `plan.target` is not a read-only view of `plan.source`
 * (or of the dir open as `sourceFd`), or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bindMismatch } from "./_bind.ts";
 * const plan = {
 *   kind: "bind", source: "/etc", target: "/etc", readOnly: true, nosuid: true, nodev: true,
 * } as const;
 * assert.equal(bindMismatch(plan, ["rw"]), "the bind mount is not read-only");
 * assert.equal(bindMismatch(plan, ["ro"]), undefined);
 * ```
 */
export function bindMismatch(
  plan: BindMountPlan,
  mountOptions: string[],
  sourceFd?: number,
): string | undefined {
  if (!mountOptions.includes("ro")) return "the bind mount is not read-only";
  const a = statxAt(AT_FDCWD, plan.target);
  const b = sourceFd === undefined
    ? statxAt(AT_FDCWD, plan.source)
    : fstatx(sourceFd);
  if (a.ino !== b.ino || a.dev !== b.dev) {
    return `${plan.target} does not show ${plan.source}`;
  }
  return undefined;
}
