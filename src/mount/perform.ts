/**
 * Performs {@link MountPlan}s: the only code in layerfs that mounts and
 * unmounts. Overlay goes through the new mount API (fsopen + one
 * `fsconfig lowerdir+` per layer + fsmount + move_mount, Linux 6.8+), so depth
 * is bounded only by the kernel's 500 lower layers; mount(2) with a
 * page-limited option string is the fallback for older kernels. Every mount
 * is checked against /proc/self/mountinfo before it is trusted.
 *
 * @module
 */

import { MountError } from "../errors.ts";
import { cstr, cstrs, SysError } from "../sys/libc_linux.ts";
import { close } from "../sys/fd_linux.ts";
import {
  FsContext,
  MNT,
  mount,
  MOUNT_ATTR,
  moveMount,
  MS,
  ST,
  umount2,
} from "../sys/mount_linux.ts";
import { FS_MAGIC } from "../sys/statfs_linux.ts";
import { bindMismatch, performBindPlan } from "./_bind.ts";
import { verifyMountById, verifyNewMount } from "./_verify.ts";
import type {
  AufsMountPlan,
  MountCall,
  MountPlan,
  OverlayMountPlan,
} from "./plan.ts";
import {
  mountAt,
  type MountInfoEntry,
  overlayLayers,
  readMountInfoSync,
} from "./mountinfo.ts";

/** Bytes mount(2) copies of its option string (one page, NUL included). */
export const PAGE_SIZE = 4096;

/** A mount(2) call for the legacy overlay path, with the directory it must run in. */
export interface LegacyOverlayCall {
  /** The call. */
  call: MountCall;
  /** Directory to chdir to first when the option string uses short relative links. */
  cwd?: string;
}

/** Options after the dirs: the label and `userxattr`, as the plan says. */
function extraOpts(plan: OverlayMountPlan): string {
  return (plan.mountLabel ? `,context="${plan.mountLabel}"` : "") +
    (plan.userXattr ? ",userxattr" : "");
}

/**
 * A path as overlayfs's `upperdir`, `workdir` and legacy `lowerdir` options
 * take it: the kernel unescapes them (ovl_mount_dir), so a backslash in a
 * path is doubled. `lowerdir+` (ovl_mount_dir_noesc) takes paths as they are.
 */
function escaped(path: string): string {
  return path.replaceAll("\\", "\\\\");
}

function overlayData(
  lowers: string[],
  upper: string | undefined,
  work: string | undefined,
  plan: OverlayMountPlan,
): string {
  const rw = upper === undefined || work === undefined
    ? ""
    : `,upperdir=${escaped(upper)},workdir=${escaped(work)}`;
  return `lowerdir=${lowers.map(escaped).join(":")}${rw}${extraOpts(plan)}`;
}

/**
 * Plans the mount(2) fallback for an overlay plan: the absolute option string
 * if it fits in a page, else moby's short relative links (`l/<short>`, run
 * from the store root), else a clear error. Never truncates: measured on
 * Linux 6.18, mount(2) silently cuts the string at 4095 bytes and a cut
 * 64-layer mount "succeeds" with the host root as its bottom layer.
 *
 * @throws {MountError} code "E2BIG" when even the short form does not fit,
 *   "EINVAL" when a path holds "," or ":" (which the option string cannot carry).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { legacyOverlayCall } from "./perform.ts";
 * const { call } = legacyOverlayCall({
 *   kind: "overlay", target: "/s/mnt/a", lowerdirs: ["/s/diff/b"], upperdir: "/s/diff/a",
 *   workdir: "/s/work/a", readOnly: false, nosuid: true, nodev: true,
 * });
 * assert.equal(call.fstype, "overlay");
 * assert.equal(call.data, "lowerdir=/s/diff/b,upperdir=/s/diff/a,workdir=/s/work/a");
 * ```
 */
export function legacyOverlayCall(
  plan: OverlayMountPlan,
  pageSize: number = PAGE_SIZE,
): LegacyOverlayCall {
  const all = [...plan.lowerdirs, plan.upperdir ?? "", plan.workdir ?? ""];
  if (all.some((p) => p.includes(",") || p.includes(":"))) {
    throw new MountError(
      "mount overlay",
      "EINVAL",
      plan.target,
      'a layer path contains "," or ":", which a mount(2) option string cannot carry; ' +
        "move the store to a plain path or use Linux 6.8+ (fsconfig lowerdir+)",
    );
  }
  const flags = (plan.nosuid ? MS.NOSUID : 0) | (plan.nodev ? MS.NODEV : 0) |
    (plan.readOnly ? MS.RDONLY : 0);
  const fits = (s: string) =>
    new TextEncoder().encode(s).length <= pageSize - 1;
  const call = (data: string) => ({
    source: "overlay",
    target: plan.target,
    fstype: "overlay",
    flags,
    data,
  });
  const data = overlayData(
    plan.lowerdirs,
    plan.upperdir,
    plan.workdir,
    plan,
  );
  if (fits(data)) return { call: call(data) };
  if (plan.short) {
    const s = plan.short;
    const short = overlayData(s.lowerdirs, s.upperdir, s.workdir, plan);
    if (fits(short)) return { call: call(short), cwd: s.cwd };
  }
  throw new MountError(
    "mount overlay",
    "E2BIG",
    plan.target,
    `${plan.lowerdirs.length} lower layers do not fit in one ${pageSize}-byte mount(2) option ` +
      "string on this kernel; use Linux 6.8+ (fsconfig lowerdir+) or a shorter chain",
  );
}

function sysCode(e: unknown): string {
  return e instanceof SysError ? e.code : "EUNKNOWN";
}

function fail(
  op: string,
  e: unknown,
  target: string,
  hint?: string,
): MountError {
  const msgs = (e as { kernelMessages?: string[] })?.kernelMessages;
  const kernel = msgs?.length
    ? `kernel says: ${msgs.join(" ").trim()}`
    : undefined;
  return new MountError(
    op,
    sysCode(e),
    target,
    [hint, kernel].filter(Boolean).join("; "),
    {
      cause: e,
    },
  );
}

/** Is `e` the answer of a kernel that lacks fsopen or `lowerdir+` (before 6.8)? */
function isOldKernel(e: unknown): boolean {
  return e instanceof SysError && (e.code === "ENOSYS" || e.code === "EINVAL");
}

/**
 * Open directories to build an overlay from instead of the plan's paths
 * (FSCONFIG_SET_FD, Linux 6.13+): what the privileged helper passes after
 * opening and checking each one, so a directory renamed or replaced by a
 * symlink after the check cannot redirect the mount (the race behind
 * fusermount's CVE-2010-0789 and mount.cifs's CVE-2010-0787). The plan's
 * paths stay what the result is verified against.
 */
export interface OverlayDirFds {
  /** Lower dir fds, in the plan's order (nearest parent first). */
  lowerdirs: number[];
  /** Upper dir fd (`diff/<id>`), when the plan has an upper dir. */
  upperdir?: number;
  /** Work dir fd (`work/<id>`), with the upper dir. */
  workdir?: number;
  /** Mount point fd (`mnt/<id>`): move_mount goes onto this very inode. */
  target: number;
}

/**
 * The one fsopen/fsconfig/fsmount/move_mount sequence of layerfs, for the
 * store (paths) and the helper (fds). The new mount is verified by its own
 * mount id (statx of the fsmount fd), not by looking up a path: a mount that
 * landed anywhere but `plan.target` (its mount point renamed mid-call) or is
 * not what was planned is detached through that fd and reported. `verify`
 * says how much (see `_verify.ts`): "mountinfo" returns the mount's entry,
 * "id" returns undefined.
 */
function mountOverlayNewApi(
  plan: OverlayMountPlan,
  options: PerformOptions,
  verify: "mountinfo" | "id",
): MountInfoEntry | undefined | "old-kernel" {
  const fds = options.fds;
  let fc: FsContext;
  try {
    fc = FsContext.open("overlay");
  } catch (e) {
    if (isOldKernel(e) && !fds) return "old-kernel";
    throw fail(
      "fsopen overlay",
      e,
      plan.target,
      "is the overlay module loaded? (modprobe overlay)",
    );
  }
  let mfd = -1;
  try {
    const key = cstr("lowerdir+");
    const lowers = fds ? [] : cstrs(plan.lowerdirs);
    for (let i = 0; i < plan.lowerdirs.length; i++) {
      try {
        if (fds) fc.setFd("lowerdir+", fds.lowerdirs[i]);
        else fc.setEncoded(key, lowers[i], "lowerdir+", plan.lowerdirs[i]);
      } catch (e) {
        if (i === 0 && isOldKernel(e) && !fds) return "old-kernel";
        throw fail(
          `fsconfig lowerdir+ (layer ${i + 1} of ${plan.lowerdirs.length})`,
          e,
          plan.target,
          `lower dir ${plan.lowerdirs[i]}${
            fds && i === 0 && isOldKernel(e)
              ? " (layers as fds need Linux 6.13+)"
              : ""
          }`,
        );
      }
    }
    try {
      if (plan.upperdir !== undefined && plan.workdir !== undefined) {
        if (fds) {
          if (fds.upperdir === undefined || fds.workdir === undefined) {
            throw new TypeError(
              "an overlay plan with an upper dir needs upper and work dir fds",
            );
          }
          fc.setFd("upperdir", fds.upperdir);
          fc.setFd("workdir", fds.workdir);
        } else {
          fc.setString("upperdir", escaped(plan.upperdir));
          fc.setString("workdir", escaped(plan.workdir));
        }
      }
      if (plan.mountLabel) fc.setString("context", plan.mountLabel);
      if (plan.userXattr) fc.setFlag("userxattr");
      if (options.untrustedLayers) {
        // Layers from an unprivileged user: never follow redirects or trust
        // metacopy-only files they may have crafted (kernel overlayfs.rst,
        // "Permission model" and "Metadata only copy up").
        fc.setString("redirect_dir", "nofollow");
        fc.setString("metacopy", "off");
      }
    } catch (e) {
      throw fail("fsconfig", e, plan.target);
    }
    const attrs = (plan.nosuid ? MOUNT_ATTR.NOSUID : 0) |
      (plan.nodev ? MOUNT_ATTR.NODEV : 0) |
      (plan.readOnly ? MOUNT_ATTR.RDONLY : 0);
    try {
      mfd = fc.createMount(attrs, plan.target);
      moveMount(mfd, fds ? fds.target : plan.target);
    } catch (e) {
      throw fail(
        (e as SysError).syscall ?? "fsmount",
        e,
        plan.target,
        "the backing filesystem may not support overlay upper dirs (see dmesg)",
      );
    }
    if (verify === "mountinfo") {
      return verifyNewMount(
        mfd,
        "overlay",
        plan.target,
        (entry) => mismatch(plan, entry),
      );
    }
    verifyMountById(mfd, "overlay", plan.target, {
      fsType: FS_MAGIC.overlayfs,
      flags: (plan.nosuid ? ST.NOSUID : 0) | (plan.nodev ? ST.NODEV : 0) |
        (plan.readOnly ? ST.RDONLY : 0),
    });
    return undefined;
  } finally {
    if (mfd >= 0) close(mfd);
    fc.close();
  }
}

function performCall(c: MountCall): void {
  try {
    mount(c.source, c.target, c.fstype, c.flags, c.data);
  } catch (e) {
    throw fail(
      `mount ${c.fstype}${c.flags & MS.REMOUNT ? " (remount)" : ""}`,
      e,
      c.target,
    );
  }
}

function mountOverlayLegacy(plan: OverlayMountPlan): void {
  const { call, cwd } = legacyOverlayCall(plan);
  if (!cwd) return performCall(call);
  // Relative short links resolve against the cwd, as moby's overlay2 does.
  const old = Deno.cwd();
  Deno.chdir(cwd);
  try {
    performCall(call);
  } finally {
    Deno.chdir(old);
  }
}

/**
 * Why `entry` (the mount found at the plan's target) is not what `plan` asked
 * for, or undefined when it matches.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMountInfo } from "./mountinfo.ts";
 * import { mismatch } from "./perform.ts";
 * import type { MountPlan } from "./plan.ts";
 * const [e] = parseMountInfo("1 1 0:1 / /m rw - tmpfs tmpfs rw\n");
 * const plan: MountPlan = { kind: "aufs", target: "/m", branches: 2, calls: [] };
 * assert.equal(mismatch(plan, e), "found a tmpfs mount, not aufs");
 * assert.equal(mismatch(plan, undefined), "nothing is mounted there");
 * ```
 */
export function mismatch(
  plan: MountPlan,
  entry: MountInfoEntry | undefined,
): string | undefined {
  if (plan.kind === "none") return undefined;
  if (!entry) return "nothing is mounted there";
  if (plan.kind === "bind") return bindMismatch(plan, entry.mountOptions);
  if (entry.fstype !== plan.kind) {
    return `found a ${entry.fstype} mount, not ${plan.kind}`;
  }
  if (plan.kind === "overlay") {
    const got = overlayLayers(entry);
    const n = plan.lowerdirs.length;
    if (got.lowerdirs.length !== n) {
      return `the kernel reports ${got.lowerdirs.length} lower dirs, ${n} were planned`;
    }
    const uppers = plan.upperdir === undefined
      ? [undefined]
      : [plan.upperdir, plan.short?.upperdir];
    if (!uppers.includes(got.upperdir)) {
      return `the kernel reports upperdir ${got.upperdir ?? "(none)"}, ${
        plan.upperdir ?? "none"
      } was planned`;
    }
    const bottoms = [plan.lowerdirs[n - 1], plan.short?.lowerdirs[n - 1]];
    if (!bottoms.includes(got.lowerdirs[n - 1])) {
      return `the kernel reports bottom layer ${got.lowerdirs[n - 1]}, ${
        plan.lowerdirs[n - 1]
      } was planned`;
    }
    if (plan.readOnly && !entry.mountOptions.includes("ro")) {
      return "the mount is not read-only";
    }
  }
  return undefined;
}

/** Options of {@link performMountPlan}. */
export interface PerformOptions {
  /**
   * How to mount overlay: "auto" uses fsopen/fsconfig `lowerdir+` and falls
   * back to mount(2) only when the kernel lacks them (ENOSYS/EINVAL);
   * "mount2" forces the page-limited mount(2) path (tests of the fallback).
   * @default {"auto"}
   */
  overlayApi?: "auto" | "mount2";
  /**
   * Build the overlay from these open directories instead of the plan's
   * paths (the privileged helper); never falls back to mount(2).
   * @default {undefined}
   */
  fds?: OverlayDirFds;
  /**
   * The layers come from a user who is not trusted with root:
   * `redirect_dir=nofollow`, `metacopy=off`.
   * @default {false}
   */
  untrustedLayers?: boolean;
}

/**
 * Performs an overlay plan synchronously (new mount API, or mount(2) on old
 * kernels unless `options.fds` is given) and verifies it from
 * /proc/self/mountinfo; a mount that is not what was planned, or not at
 * `plan.target`, is detached and reported.
 *
 * @returns The new mount's mountinfo entry.
 * @throws {MountError} with the errno name and the failing operation.
 *
 * @example
 * ```ts ignore
 * import { performOverlayPlan } from "./perform.ts";
 * const entry = performOverlayPlan({
 *   kind: "overlay", target: "/s/mnt/a", lowerdirs: ["/s/diff/b"], upperdir: "/s/diff/a",
 *   workdir: "/s/work/a", readOnly: false, nosuid: true, nodev: true,
 * });
 * console.log(entry.id);
 * ```
 */
export function performOverlayPlan(
  plan: OverlayMountPlan,
  options: PerformOptions = {},
): MountInfoEntry {
  if (options.fds && options.fds.lowerdirs.length !== plan.lowerdirs.length) {
    throw new MountError(
      "mount overlay",
      "EINVAL",
      plan.target,
      `${options.fds.lowerdirs.length} lower fds for ${plan.lowerdirs.length} lower dirs`,
    );
  }
  return mountOverlay(plan, options, "mountinfo")!;
}

/** {@link performOverlayPlan} with the verification `verify` (see `_verify.ts`). */
function mountOverlay(
  plan: OverlayMountPlan,
  options: PerformOptions,
  verify: "mountinfo" | "id",
): MountInfoEntry | undefined {
  if (options.overlayApi !== "mount2" || options.fds) {
    const r = mountOverlayNewApi(plan, options, verify);
    if (r !== "old-kernel") return r;
  }
  mountOverlayLegacy(plan);
  return verifyAt(plan);
}

/** Verifies (by path: mount(2) gives no fd) what is mounted at the plan's target. */
function verifyAt(plan: MountPlan): MountInfoEntry {
  const entry = mountAt(readMountInfoSync(), plan.target);
  const why = mismatch(plan, entry);
  if (why) {
    detach(plan.target);
    throw new MountError(
      `verify ${plan.kind} mount`,
      "EMISMATCH",
      plan.target,
      `${why}; the mount was detached (report this with your kernel version)`,
    );
  }
  return entry!;
}

/**
 * Performs `plan` (mounting on `plan.target`), then verifies it: a mount
 * made with the new mount API by its mount id, type and flags (two statx and
 * one fstatfs, however large the mount table), a mount(2) one (aufs, the
 * overlay fallback on old kernels) from /proc/self/mountinfo; a mount that is
 * not what was planned is detached and reported. A `none` plan does nothing.
 *
 * @throws {MountError} with the errno name and the failing operation.
 *
 * @example
 * ```ts ignore
 * import { performMountPlan } from "./perform.ts";
 * await performMountPlan({
 *   kind: "overlay", target: "/s/mnt/a", lowerdirs: ["/s/diff/b"], upperdir: "/s/diff/a",
 *   workdir: "/s/work/a", readOnly: false, nosuid: true, nodev: true,
 * });
 * ```
 */
export function performMountPlan(
  plan: MountPlan,
  options: PerformOptions = {},
): Promise<void> {
  try {
    if (plan.kind === "overlay") {
      // Given fds (the helper's untrusted case): the full mountinfo check.
      if (options.fds) performOverlayPlan(plan, options);
      else mountOverlay(plan, options, "id");
    } else if (plan.kind === "bind") performBindPlan(plan, undefined, "id");
    else if (plan.kind === "aufs") {
      performAufs(plan);
      verifyAt(plan);
    }
    return Promise.resolve();
  } catch (e) {
    return Promise.reject(e);
  }
}

function performAufs(plan: AufsMountPlan): void {
  try {
    for (const c of plan.calls) performCall(c);
  } catch (e) {
    // A half-appended aufs mount must not stay behind (as moby's aufsMount does).
    detach(plan.target);
    throw e;
  }
}

function detach(target: string): void {
  try {
    umount2(target, MNT.DETACH);
  } catch { /* not mounted */ }
}

/**
 * Unmounts `target` (lazily, MNT_DETACH, as moby's overlay2 Put does, so a
 * process still inside the view does not make the store fail). Not mounted is
 * not an error.
 *
 * @throws {MountError} on any other failure.
 *
 * @example
 * ```ts ignore
 * import { unmountTarget } from "./perform.ts";
 * unmountTarget("/var/lib/layerfs/mnt/app");
 * ```
 */
export function unmountTarget(target: string): void {
  try {
    umount2(target, MNT.DETACH | MNT.NOFOLLOW);
  } catch (e) {
    if (e instanceof SysError && (e.code === "EINVAL" || e.code === "ENOENT")) {
      return;
    }
    throw fail("umount2", e, target);
  }
}
