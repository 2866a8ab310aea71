/**
 * What the helper does once a request is authorised: read the store's own
 * metadata (never the caller's word), plan the overlay mount, open every
 * directory safely, and mount or unmount on file descriptors.
 *
 * @module
 */

import {
  HelperError,
  LayerNotFound,
  MountError,
  StoreError,
} from "../src/errors.ts";
import type { OverlayMountPlan } from "../src/mount/plan.ts";
import {
  type MountInfoEntry,
  overlayLayers,
  readMountInfoSync,
} from "../src/mount/mountinfo.ts";
import { performOverlayPlan } from "../src/mount/perform.ts";
import { performBindPlan } from "../src/mount/_bind.ts";
import { detachFd } from "../src/sys/mount_linux.ts";
import { SysError } from "../src/sys/libc_linux.ts";
import { parseConfig as parseStoreConfig } from "../src/store/config.ts";
import { parseMeta, parseParents } from "../src/store/meta.ts";
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
import { HelperLock } from "./_inuse.ts";
import type { Caller } from "./identity.ts";
import type { HelperRequest } from "./request.ts";
import { backendByName } from "../src/backends/registry.ts";
import type { Backend, LayerMountInput } from "../src/backends/types.ts";

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

/** The opened store root: its fd, owner and mount. */
interface StoreRoot {
  fd: number;
  owner: number;
  mntId: bigint;
}

function refuse(what: string, e: unknown): never {
  const why = e instanceof SysError
    ? (e.code === "ELOOP"
      ? "a symlink is in the way"
      : e.code === "EXDEV"
      ? "it is on another mount than the store (a bind mount or mount point)"
      : e.code)
    : (e as Error).message;
  throw new HelperError(`Refusing ${what}: ${why}`);
}

/**
 * Opens `rel` below the store root (no symlinks, never across a mount point:
 * RESOLVE_NO_XDEV) and checks type, owner and mount.
 *
 * Only the store owner's files and dirs are accepted, root's neither: a
 * root-owned dir that sits in one of the user's dirs (e.g. one root made
 * while using the store) can be renamed into `diff/<id>` or `work/<id>`
 * by that user, and the mount would then publish or write root's files for
 * them. Metadata files must have one link, so a hard link to a root-only file
 * (possible where fs.protected_hardlinks=0) is never read.
 */
function openChecked(
  fds: Fds,
  root: StoreRoot,
  rel: string,
  kind: "dir" | "file",
  owners: number[] = [root.owner],
): { fd: number; stat: FdStat } {
  let fd: number;
  try {
    fd = fds.add(
      openBelow(
        root.fd,
        rel,
        kind === "dir" ? DIR_PATH_FLAGS : O.RDONLY | O.NOFOLLOW | O.NONBLOCK,
        true,
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
  if (stat.mntId !== root.mntId) {
    throw new HelperError(
      `Refusing: ${rel} is on another mount than the store root`,
    );
  }
  if (kind === "file" && stat.nlink !== 1) {
    throw new HelperError(`Refusing: ${rel} has ${stat.nlink} hard links`);
  }
  if (!owners.includes(stat.uid)) {
    throw new HelperError(
      `Refusing: ${rel} is owned by uid ${stat.uid}, not by the store's owner ${root.owner}`,
    );
  }
  return { fd, stat };
}

/** Reads a small metadata file (at most 1 MiB of UTF-8) through a checked fd. */
function readSmall(
  fds: Fds,
  root: StoreRoot,
  rel: string,
): string {
  const { fd } = openChecked(fds, root, rel, "file");
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(
      readAllFd(fd, 1 << 20),
    );
  } catch {
    throw new HelperError(
      `Refusing: ${rel} is not UTF-8 text of at most 1 MiB`,
    );
  }
}

function absent(e: unknown): boolean {
  return e instanceof HelperError && e.message.includes("does not exist");
}

/** Opens the store root and checks who owns it. */
function openStoreRoot(
  fds: Fds,
  req: HelperRequest,
  caller: Caller,
  allowedOwners: Set<number>,
): StoreRoot {
  let fd: number;
  try {
    fd = fds.add(openNoSymlinks(req.root, DIR_PATH_FLAGS));
  } catch (e) {
    refuse(`store root ${req.root}`, e);
  }
  const s = fstat(fd);
  if (!isDir(s)) {
    throw new HelperError(`Refusing: ${req.root} is not a directory`);
  }
  if (s.uid !== 0 && s.uid !== caller.uid && !allowedOwners.has(s.uid)) {
    throw new HelperError(
      `Refusing: store ${req.root} is owned by uid ${s.uid}, who is neither the caller nor listed for it`,
    );
  }
  return { fd, owner: s.uid, mntId: s.mntId };
}

/**
 * Reads what the plan depends on from the store through checked fds, and
 * parses it with the store's own parsers (src/store/config.ts, meta.ts), so
 * the helper and the store can never read one file two ways. Their errors
 * name the file, never its content.
 */
function readMetadata(
  fds: Fds,
  root: StoreRoot,
  req: HelperRequest,
): { backend: Backend; input: LayerMountInput } {
  const parse = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof StoreError) {
        throw new HelperError(`Refusing store ${req.root}: ${e.message}`);
      }
      throw e;
    }
  };
  const text = readSmall(fds, root, "layerfs.json");
  const config = parse(() => parseStoreConfig(text));
  let layerText: string;
  try {
    layerText = readSmall(fds, root, `layers/${req.id}`);
  } catch (e) {
    if (absent(e)) throw new LayerNotFound(req.id);
    throw e;
  }
  // Parent ids become paths below: the store's parser validates each.
  const parents = parse(() => parseParents(layerText, req.id));
  // A missing meta/<id> is an image layer (as the store reads it).
  let metaText: string | undefined;
  try {
    metaText = readSmall(fds, root, `meta/${req.id}`);
  } catch (e) {
    if (!absent(e)) throw e;
  }
  const meta = metaText === undefined
    ? { readWrite: false }
    : parse(() => parseMeta(metaText, req.id));
  return {
    backend: backendByName(config.backend),
    input: {
      root: req.root,
      id: req.id,
      parents,
      readWrite: meta.readWrite,
      mountLabel: meta.mountLabel,
      userXattr: config.userXattr === true,
    },
  };
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

/** `dev:ino` of an opened dir: what a rename does not change. */
function identity(s: FdStat): string {
  return `${s.dev}:${s.ino}`;
}

/** The overlay in `info` that uses `path` as its upper or work dir, if any. */
function overlayUsing(
  info: MountInfoEntry[],
  path: string,
): MountInfoEntry | undefined {
  return info.find((m) => {
    if (m.fstype !== "overlay") return false;
    const l = overlayLayers(m);
    return l.upperdir === path || l.workdir === path;
  });
}

/**
 * Mounts layer `req.id` of store `req.root` at `<root>/mnt/<id>`.
 *
 * Under the helper's lock: refuses an upper or work dir that a live mount
 * uses already (by path in mountinfo, and by device and inode in the
 * helper's record, which a rename does not fool), builds the overlay from the
 * checked fds through the store's own sequence (src/mount/perform.ts) and
 * keeps it only if mountinfo shows it at `<root>/mnt/<id>`.
 *
 * @throws {HelperError} on any refusal; {@link MountError} when the kernel refuses.
 */
export function helperMount(
  req: HelperRequest,
  caller: Caller,
  allowedOwners: Set<number>,
): HelperResult {
  using fds = new Fds();
  const root = openStoreRoot(fds, req, caller, allowedOwners);
  using lock = HelperLock.acquire();
  const { backend, input } = readMetadata(fds, root, req);
  // The store's backend plans, fed with metadata read safely above (the
  // store's planLayerMount reads with path APIs that follow symlinks: fine
  // for the store's owner, not for root reading a user's files).
  const planned = backend.planMount(input);
  const target = mountTarget(req);
  if (planned.kind === "none") {
    throw new HelperError(
      `Layer ${req.id} needs no mount: its view is ${planned.target}`,
    );
  }
  if (planned.kind !== "bind" && planned.kind !== "overlay") {
    // aufs plans are sequences of mount(2) calls on paths, which the
    // helper cannot pin to checked fds.
    throw new HelperError(
      `Store ${req.root} uses backend ${backend.name}, whose ${planned.kind} mounts the helper does not perform; ` +
        "use overlay (or vfs, which needs no helper)",
    );
  }
  if (planned.target !== target) {
    throw new HelperError(
      `Refusing plan: target ${planned.target} is not ${target}`,
    );
  }
  const dir = (p: string) =>
    openChecked(fds, root, relUnder(req.root, p), "dir");
  // The target: `mnt` on the store's mount, then `<id>` in that pinned dir
  // (not across a mount: an existing mount there is reported, not entered).
  const mnt = dir(`${req.root}/mnt`);
  let tfd: number;
  try {
    tfd = fds.add(openBelow(mnt.fd, req.id, DIR_PATH_FLAGS));
  } catch (e) {
    if (e instanceof SysError && e.code === "ENOENT") {
      throw new HelperError(
        `Refusing: mnt/${req.id} does not exist in the store`,
      );
    }
    refuse(`mnt/${req.id}`, e);
  }
  const t = { fd: tfd, stat: fstat(tfd) };
  if (t.stat.mntId !== mnt.stat.mntId) {
    throw new HelperError(
      `${target} is already a mount point; run "layerfs umount ${req.id}" first`,
    );
  }
  if (!isDir(t.stat) || t.stat.uid !== root.owner) {
    throw new HelperError(
      `Refusing: mnt/${req.id} is not a directory of the store's owner ${root.owner}`,
    );
  }
  if (planned.kind === "bind") {
    // A read-only layer without parents: a read-only bind of its own dir,
    // from the fd checked above onto the pinned mount point.
    performBindPlan(planned, { source: dir(planned.source).fd, target: t.fd });
    return { op: "mount", target };
  }
  const plan: OverlayMountPlan = planned;
  const lower = plan.lowerdirs.map((p) => dir(p).fd);
  // A read-only layer's view has no upper dir (nothing of it is written);
  // only a read-write one has upper and work dirs to check and record.
  const rw = plan.upperdir !== undefined && plan.workdir !== undefined
    ? checkUpper(fds, root, req, lock, dir, plan.upperdir, plan.workdir)
    : undefined;
  let entry: MountInfoEntry;
  try {
    entry = performOverlayPlan(plan, {
      fds: {
        lowerdirs: lower,
        upperdir: rw?.upper,
        workdir: rw?.work,
        target: t.fd,
      },
      untrustedLayers: true,
    });
  } catch (e) {
    if (e instanceof MountError) throw e;
    if (e instanceof SysError) {
      throw new MountError(e.syscall, e.code, target, e.message, { cause: e });
    }
    throw e;
  }
  if (rw) lock.record(entry, rw.dirs, readMountInfoSync());
  return { op: "mount", target };
}

/**
 * Opens and checks a read-write view's upper and work dirs: refuses either
 * when a live mount uses it already (by path in mountinfo, and by device and
 * inode in the helper's record, which a rename does not fool).
 */
function checkUpper(
  fds: Fds,
  root: StoreRoot,
  req: HelperRequest,
  lock: HelperLock,
  dir: (path: string) => { fd: number; stat: FdStat },
  upperdir: string,
  workdir: string,
): { upper: number; work: number; dirs: string[] } {
  const upper = dir(upperdir);
  const work = dir(workdir);
  // overlay creates work/<id>/work itself, as the mounter (root): the one
  // root-owned dir accepted, by name, and only on the store's mount.
  try {
    openChecked(fds, root, `${relUnder(req.root, workdir)}/work`, "dir", [
      0,
      root.owner,
    ]);
  } catch (e) {
    if (!absent(e)) throw e;
  }
  const info = readMountInfoSync();
  for (const [what, path] of [["upper", upperdir], ["work", workdir]]) {
    const m = overlayUsing(info, path);
    if (m) {
      throw new HelperError(
        `Refusing: ${path} is already the ${what} dir of the overlay at ${m.mountPoint}; ` +
          `run "layerfs umount" on that layer first`,
      );
    }
  }
  const dirs = [identity(upper.stat), identity(work.stat)];
  const used = lock.usedBy(dirs, info);
  if (used !== undefined) {
    throw new HelperError(
      `Refusing: the upper or work dir of ${req.id} is in use by the overlay mounted at ${used} ` +
        `(renamed since?); unmount that one first`,
    );
  }
  return { upper: upper.fd, work: work.fd, dirs };
}

/**
 * Unmounts the overlay at `<root>/mnt/<id>` of an allowed store, after
 * checking from mountinfo that it is an overlay whose upper dir (or, with
 * none, top lower dir) is this layer's `diff/<id>` (what the helper would
 * have mounted there).
 *
 * @throws {HelperError} when nothing (or something else) is mounted there.
 */
export function helperUmount(
  req: HelperRequest,
  caller: Caller,
  allowedOwners: Set<number>,
): HelperResult {
  using fds = new Fds();
  const root = openStoreRoot(fds, req, caller, allowedOwners);
  using lock = HelperLock.acquire();
  const target = mountTarget(req);
  const mntParent = openChecked(fds, root, "mnt", "dir");
  let fd: number;
  try {
    fd = fds.add(openBelow(mntParent.fd, req.id, DIR_PATH_FLAGS));
  } catch (e) {
    refuse(`mnt/${req.id}`, e);
  }
  const s = fstat(fd);
  if (s.mntId === mntParent.stat.mntId) {
    return { op: "umount", target, wasMounted: false };
  }
  const entry = readMountInfoSync().find((m) => BigInt(m.id) === s.mntId);
  // This layer's overlay: its diff dir as the upper dir (read-write) or, with
  // no upper dir, as the top lower dir (a read-only layer's view).
  const own = `${req.root}/diff/${req.id}`;
  const layers = entry?.fstype === "overlay" ? overlayLayers(entry) : undefined;
  const isOverlay = layers !== undefined &&
    (layers.upperdir === own ||
      (layers.upperdir === undefined && layers.lowerdirs[0] === own));
  // A read-only base layer's view: a bind whose root is this layer's diff dir.
  const isBind = !isOverlay && entry !== undefined &&
    identity(openChecked(fds, root, `diff/${req.id}`, "dir").stat) ===
      identity(s);
  if (!entry || entry.mountPoint !== target || !(isOverlay || isBind)) {
    throw new HelperError(
      `Refusing to unmount ${target}: what is mounted there is not this layer's view`,
    );
  }
  try {
    // MNT_DETACH through the fd: our own fd keeps the mount busy (and so
    // may a process still inside the view, as with the store's own unmount).
    detachFd(fd);
  } catch (e) {
    if (e instanceof SysError) {
      throw new MountError("umount2", e.code, target, undefined, { cause: e });
    }
    throw e;
  }
  lock.forget(entry.id, readMountInfoSync());
  return { op: "umount", target, wasMounted: true };
}
