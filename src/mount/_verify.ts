/**
 * Internal: verifying a mount made with the new mount API by its own mount
 * id (statx of the mount fd), not by looking up a path: a mount that landed
 * anywhere but the plan's target (its mount point renamed mid-call) or is
 * not what was planned is detached through that fd and reported.
 *
 * Two strengths. {@link verifyNewMount} reads the mount's line in
 * /proc/self/mountinfo and checks what the kernel reports about it (the
 * privileged helper's check, whose caller is not trusted). {@link
 * verifyMountById} asks only the mount fd and the target path (two statx, one
 * fstatfs; O(1) however many mounts and layers there are): the store's own
 * mounts as root, built from its own paths, where the layers cannot differ
 * from the plan (each `lowerdir+` is one fsconfig call that takes its whole
 * string or fails), so what is left to check is where the mount landed and
 * its flags. mountinfo grows with every mount on the host (a 500-layer
 * overlay prints 500 paths), and reading it cost 0.3-4 ms a get.
 *
 * @module
 */

import { MountError } from "../errors.ts";
import {
  detachFd,
  fsFactsOf,
  mountIdAt,
  mountIdOf,
} from "../sys/mount_linux.ts";
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
  if (why) refuse(mfd, kind, target, why);
  return entry!;
}

/** What {@link verifyMountById} expects of the mount. */
export interface MountExpectation {
  /** Filesystem magic (statfs `f_type`); undefined: any (a bind mount shows its source's). */
  fsType?: number;
  /** ST_* flags that must be set (statfs `f_flags`). */
  flags: number;
}

/**
 * Checks that the mount open as `mfd` is the one `target` shows now (the
 * same mount id) and has the expected type and flags; `check` may add a
 * test of its own (returning why not).
 *
 * @throws {MountError} EMISMATCH, after detaching the mount.
 */
export function verifyMountById(
  mfd: number,
  kind: string,
  target: string,
  want: MountExpectation,
  check?: () => string | undefined,
): void {
  let why: string | undefined;
  try {
    const facts = fsFactsOf(mfd);
    why = mountIdAt(target) !== mountIdOf(mfd)
      ? `${target} does not show the new mount (the mount point was moved meanwhile)`
      : want.fsType !== undefined && facts.type !== want.fsType
      ? `the new mount has filesystem type 0x${facts.type.toString(16)}`
      : (facts.flags & want.flags) !== want.flags
      ? `the new mount lacks flags 0x${
        (want.flags & ~facts.flags).toString(16)
      } (ro=1, nosuid=2, nodev=4)`
      : check?.();
  } catch (e) {
    why = `it cannot be checked (${(e as Error).message})`;
  }
  if (why) refuse(mfd, kind, target, why);
}

function refuse(mfd: number, kind: string, target: string, why: string): never {
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
