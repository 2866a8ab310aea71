/**
 * Internal: verifying a mount made with the new mount API by its own mount
 * id (statx of the mount fd), not by looking up a path: a mount that landed
 * anywhere but the plan's target (its mount point renamed mid-call) or is
 * not what was planned is detached through that fd and reported.
 *
 * @module
 */

import { MountError } from "../errors.ts";
import { detachFd, mountIdOf } from "../sys/mount_linux.ts";
import { type MountInfoEntry, readMountInfoSync } from "./mountinfo.ts";

/**
 * The mountinfo entry of the mount open as `mfd`, checked to be at `target`
 * and to pass `check` (which returns why not, or undefined).
 *
 * @throws {MountError} EMISMATCH, after detaching the mount.
 */
export function verifyNewMount(
  mfd: number,
  kind: string,
  target: string,
  check: (entry: MountInfoEntry) => string | undefined,
): MountInfoEntry {
  const id = mountIdOf(mfd);
  const entry = readMountInfoSync().find((m) => m.id === id);
  const why = !entry
    ? "the new mount is not in /proc/self/mountinfo"
    : entry.mountPoint !== target
    ? `it landed on ${entry.mountPoint} (the mount point was moved meanwhile)`
    : check(entry);
  if (why) {
    try {
      detachFd(mfd);
    } catch { /* already gone */ }
    throw new MountError(
      `verify ${kind} mount`,
      "EMISMATCH",
      target,
      `${why}; the mount was detached`,
    );
  }
  return entry!;
}
