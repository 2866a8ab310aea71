/**
 * What the helper does once a request is authorised: read the store's own
 * metadata (never the caller's word), plan the overlay mount, open every
 * directory safely, and mount or unmount on file descriptors.
 *
 * @module
 */

import { HelperError, LayerNotFound, MountError } from "../src/errors.ts";
import type { OverlayMountPlan } from "../src/mount/plan.ts";
import { parseMountInfo } from "../src/mount/mountinfo.ts";
import { SysError } from "../src/sys/libc_linux.ts";
import {
  close,
  DIR_PATH_FLAGS,
  type FdStat,
  fstat,
  isDir,
  isRegular,
  O,
  openBelow,
  openNoSymlinks,
  readAllFd,
} from "./_fs.ts";
import { AT_FDCWD, openat } from "../src/sys/fd_linux.ts";
import { mountOverlayFds, umountFd } from "./_mount_linux.ts";
import type { Caller } from "./identity.ts";
import { type HelperRequest, validateId } from "./request.ts";
import { planOverlayMount } from "../src/backends/overlay.ts";
import type { LayerMountInput } from "../src/backends/types.ts";

/** Result of a helper run. */
export interface HelperResult {
  /** What was done. */
  op: "mount" | "umount";
  /** The mount point. */
  target: string;
  /** For umount: whether something was mounted (not mounted is not an error). */
  wasMounted?: boolean;
}

/** Fds opened during one request, closed at the end. */
class Fds {
  #fds: number[] = [];
  add(fd: number): number {
    this.#fds.push(fd);
    return fd;
  }
  [Symbol.dispose](): void {
    for (const fd of this.#fds.reverse()) close(fd);
  }
}

function refuse(what: string, e: unknown): never {
  const why = e instanceof SysError
    ? (e.code === "ELOOP" ? "a symlink is in the way" : e.code)
    : (e as Error).message;
  throw new HelperError(`Refusing ${what}: ${why}`);
}

/** Opens `rel` below the store root, no symlinks, and checks type and owner. */
function openChecked(
  fds: Fds,
  rootFd: number,
  rel: string,
  owner: number,
  kind: "dir" | "file",
): { fd: number; stat: FdStat } {
  let fd: number;
  try {
    fd = fds.add(
      openBelow(
        rootFd,
        rel,
        kind === "dir" ? DIR_PATH_FLAGS : O.RDONLY | O.NOFOLLOW | O.NONBLOCK,
      ),
    );
  } catch (e) {
    if (e instanceof SysError && e.code === "ENOENT") {
      throw new HelperError(`Refusing: ${rel} does not exist in the store`);
    }
    refuse(rel, e);
  }
  const stat = fstat(fd);
  if (kind === "dir" ? !isDir(stat) : !isRegular(stat)) {
    throw new HelperError(
      `Refusing: ${rel} is not a ${
        kind === "dir" ? "directory" : "regular file"
      }`,
    );
  }
  // Owned by the store's owner: a dir or file someone else put there is not
  // part of this store. Directories may also be root's (overlay creates
  // work/<id>/work as root); metadata files may not, and must have one link,
  // so a hard link to a root-only file (possible where
  // fs.protected_hardlinks=0) is never read.
  const ownerOk = stat.uid === owner || (kind === "dir" && stat.uid === 0);
  if (kind === "file" && stat.nlink !== 1) {
    throw new HelperError(`Refusing: ${rel} has ${stat.nlink} hard links`);
  }
  if (!ownerOk) {
    throw new HelperError(
      `Refusing: ${rel} is owned by uid ${stat.uid}, not by the store's owner ${owner}`,
    );
  }
  return { fd, stat };
}

function readSmall(
  fds: Fds,
  rootFd: number,
  rel: string,
  owner: number,
): string {
  const { fd } = openChecked(fds, rootFd, rel, owner, "file");
  return new TextDecoder().decode(readAllFd(fd, 1 << 20));
}

/** Opens the store root and checks who owns it. */
function openStoreRoot(
  fds: Fds,
  req: HelperRequest,
  caller: Caller,
  allowedOwners: Set<number>,
): { rootFd: number; owner: number } {
  let rootFd: number;
  try {
    rootFd = fds.add(openNoSymlinks(req.root, DIR_PATH_FLAGS));
  } catch (e) {
    refuse(`store root ${req.root}`, e);
  }
  const s = fstat(rootFd);
  if (!isDir(s)) {
    throw new HelperError(`Refusing: ${req.root} is not a directory`);
  }
  if (s.uid !== 0 && s.uid !== caller.uid && !allowedOwners.has(s.uid)) {
    throw new HelperError(
      `Refusing: store ${req.root} is owned by uid ${s.uid}, who is neither the caller nor listed for it`,
    );
  }
  return { rootFd, owner: s.uid };
}

/** Reads what the plan depends on from the store, safely. */
function readMetadata(
  fds: Fds,
  rootFd: number,
  owner: number,
  req: HelperRequest,
): LayerMountInput {
  let config: { backend?: unknown; userXattr?: unknown };
  try {
    config = JSON.parse(readSmall(fds, rootFd, "layerfs.json", owner));
  } catch (e) {
    if (e instanceof HelperError) throw e;
    throw new HelperError(
      `Refusing: ${req.root}/layerfs.json is not valid JSON`,
    );
  }
  if (config.backend !== "overlay") {
    throw new HelperError(
      `Store ${req.root} uses backend ${
        JSON.stringify(config.backend)
      }; the helper mounts only overlay stores`,
    );
  }
  let layerText: string;
  try {
    layerText = readSmall(fds, rootFd, `layers/${req.id}`, owner);
  } catch (e) {
    if (e instanceof HelperError && e.message.includes("does not exist")) {
      throw new LayerNotFound(req.id);
    }
    throw e;
  }
  const parents = layerText.split("\n").filter((l) => l !== "");
  // Parent ids become paths below: validate each before use, without echoing
  // what the file holds (it is the caller's file; keep root's reads private).
  for (const p of parents) {
    try {
      validateId(p);
    } catch {
      throw new HelperError(
        `Refusing: layers/${req.id} holds an invalid parent id; the store is corrupt`,
      );
    }
  }
  // meta/<id> (JSON) says read-write; a missing file is an image layer.
  let readWrite = false;
  let mountLabel: string | undefined;
  let metaText: string | undefined;
  try {
    metaText = readSmall(fds, rootFd, `meta/${req.id}`, owner);
  } catch (e) {
    if (!(e instanceof HelperError && e.message.includes("does not exist"))) {
      throw e;
    }
  }
  if (metaText !== undefined) {
    try {
      const m = JSON.parse(metaText);
      readWrite = m.readWrite === true;
      if (typeof m.mountLabel === "string" && m.mountLabel !== "") {
        mountLabel = m.mountLabel;
      }
    } catch {
      throw new HelperError(`Refusing: meta/${req.id} is not valid JSON`);
    }
  }
  return {
    root: req.root,
    id: req.id,
    parents,
    readWrite,
    mountLabel,
    userXattr: config.userXattr === true,
  };
}

/**
 * /proc/self/mountinfo read through libc: Deno's permission model asks for
 * --allow-all to read /proc/self, which the helper must never have.
 */
function readMountInfoFd(): string {
  const fd = openat(AT_FDCWD, "/proc/self/mountinfo", O.RDONLY);
  try {
    return new TextDecoder().decode(readAllFd(fd, 64 << 20));
  } finally {
    close(fd);
  }
}

function relUnder(root: string, path: string): string {
  if (!path.startsWith(root + "/")) {
    throw new HelperError(`Refusing plan path ${path}: not below ${root}`);
  }
  return path.slice(root.length + 1);
}

function mountTarget(req: HelperRequest): string {
  return `${req.root}/mnt/${req.id}`;
}

/**
 * Mounts layer `req.id` of store `req.root` at `<root>/mnt/<id>`.
 *
 * @throws {HelperError} on any refusal; {@link MountError} when the kernel refuses.
 */
export function helperMount(
  req: HelperRequest,
  caller: Caller,
  allowedOwners: Set<number>,
): HelperResult {
  using fds = new Fds();
  const { rootFd, owner } = openStoreRoot(fds, req, caller, allowedOwners);
  const meta = readMetadata(fds, rootFd, owner, req);
  // The store's own pure planner, fed with metadata read safely above (its
  // planLayerMount reads with path APIs that follow symlinks: fine for the
  // store's owner, not for root reading a user's files).
  const planned = planOverlayMount(meta);
  const target = mountTarget(req);
  if (planned.kind !== "overlay") {
    throw new HelperError(
      `Layer ${req.id} has no parents: its view is ${req.root}/diff/${req.id} and nothing needs mounting`,
    );
  }
  const plan: OverlayMountPlan = planned;
  if (plan.target !== target) {
    throw new HelperError(
      `Refusing plan: target ${plan.target} is not ${target}`,
    );
  }
  const dir = (p: string) =>
    openChecked(fds, rootFd, relUnder(req.root, p), owner, "dir");
  const mntParent = openChecked(fds, rootFd, "mnt", owner, "dir");
  const t = dir(plan.target);
  if (t.stat.mntId !== mntParent.stat.mntId) {
    throw new HelperError(
      `${target} is already a mount point; run "layerfs umount ${req.id}" first`,
    );
  }
  const lower = plan.lowerdirs.map((p) => dir(p).fd);
  const upper = dir(plan.upperdir).fd;
  const work = dir(plan.workdir).fd;
  try {
    mountOverlayFds({
      lower,
      upper,
      work,
      target: t.fd,
      readOnly: plan.readOnly,
      mountLabel: plan.mountLabel,
      userXattr: plan.userXattr,
    });
  } catch (e) {
    if (e instanceof SysError) {
      throw new MountError(e.syscall, e.code, target, e.message, { cause: e });
    }
    throw e;
  }
  return { op: "mount", target };
}

/**
 * Unmounts the overlay at `<root>/mnt/<id>` of an allowed store, after
 * checking from mountinfo that it is an overlay whose upper dir is this
 * layer's `diff/<id>` (what the helper would have mounted there).
 *
 * @throws {HelperError} when nothing (or something else) is mounted there.
 */
export function helperUmount(
  req: HelperRequest,
  caller: Caller,
  allowedOwners: Set<number>,
): HelperResult {
  using fds = new Fds();
  const { rootFd, owner } = openStoreRoot(fds, req, caller, allowedOwners);
  const target = mountTarget(req);
  const mntParent = openChecked(fds, rootFd, "mnt", owner, "dir");
  let fd: number;
  try {
    fd = fds.add(openBelow(rootFd, `mnt/${req.id}`, DIR_PATH_FLAGS));
  } catch (e) {
    refuse(`mnt/${req.id}`, e);
  }
  const s = fstat(fd);
  if (s.mntId === mntParent.stat.mntId) {
    return { op: "umount", target, wasMounted: false };
  }
  const entry = parseMountInfo(readMountInfoFd())
    .find((m) => BigInt(m.id) === s.mntId);
  const upper = `upperdir=${req.root}/diff/${req.id}`;
  if (
    !entry || entry.fstype !== "overlay" || entry.mountPoint !== target ||
    !entry.superOptions.includes(upper)
  ) {
    throw new HelperError(
      `Refusing to unmount ${target}: what is mounted there is not this layer's overlay`,
    );
  }
  try {
    umountFd(fd);
  } catch (e) {
    if (e instanceof SysError) {
      throw new MountError(
        "umount2",
        e.code,
        target,
        e.code === "EBUSY"
          ? "the view is in use; close what uses it and retry"
          : undefined,
        { cause: e },
      );
    }
    throw e;
  }
  return { op: "umount", target, wasMounted: true };
}
