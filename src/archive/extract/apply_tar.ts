/**
 * `applyTar`: extract an (OCI layer) tar into a plain directory, safely and
 * fast, for users without a store. The store's `applyDiff` uses the same
 * engine through {@link applyLayerTar}.
 *
 * ## Safety
 * Nothing is ever written, chmodded, chowned or timed outside `dirPath`,
 * whatever the tar holds, and a hostile tar is refused, not reinterpreted
 * (an {@link InvalidArchive} naming the entry; the reader's module doc lists
 * every check):
 * - names are read lexically under the directory: a leading `/` is dropped
 *   (absolute names are taken relative to it, GNU tar's default), `.` and
 *   empty components vanish, and a name or hard-link target whose `..` climbs
 *   above the directory (`../etc/passwd`, `a/../../x`) is refused, as moby
 *   refuses a "breakout";
 * - parents are resolved with `openat2(RESOLVE_IN_ROOT |
 *   RESOLVE_NO_MAGICLINKS)`, so a symlink in parent position (made by this tar
 *   or already in the directory, e.g. from an earlier layer) can never lead
 *   out; one whose target climbs above the directory is refused outright,
 *   while one that stays inside (an absolute target counts from the
 *   directory, as in the container) is followed;
 * - the entry itself is created without following a symlink at its name;
 *   hardlinks may only point to earlier entries of the same tar;
 * - xattrs that belong to the host are dropped: overlayfs's own
 *   (`trusted.overlay.*`, `user.overlay.*`) and `security.selinux` (the host
 *   labels views with `context=`); `security.capability` is kept.
 * - a whiteout (`.wh.<name>`) or opaque marker (`.wh..wh..opq`) whose
 *   directory resolves through a symlink (made by this tar or already in the
 *   directory) is refused, naming it.
 *
 * ## Semantics
 * The last entry for a name wins: an existing file, symlink or directory tree
 * there is removed first (an existing directory is kept and merged into when
 * the entry is a directory). Directory modes, owners, xattrs and times are set
 * after all entries, deepest first. Missing parent directories are created
 * with mode 0755.
 *
 * ## Running unprivileged
 * As root, owners (uid/gid), all xattrs, setuid/setgid bits and char/block
 * devices are restored. Unprivileged, like containers/storage in rootless
 * mode, extraction continues where the kernel forbids a step: entries keep the
 * caller's owner (no chown), device nodes are skipped, and xattrs the caller may
 * not set (trusted.*, security.*) are skipped; FIFOs, modes and times are
 * still applied. Overlay whiteouts (0/0 char devices) can be made without
 * privileges since Linux 5.8.
 *
 * ## On failure
 * The archive is read as it streams, so an entry is refused only when it is
 * reached: `applyTar` on a plain directory leaves the entries before it in
 * place (and nothing outside the directory); a file whose body was cut short
 * (or whose owner, mode or times could not be set) is removed, so that no
 * half-written file looks whole. To get all or nothing, extract
 * into an empty staging directory and remove it on error, which is what the
 * store's `applyDiff` does (its staging directory is removed, no layer is
 * made).
 *
 * @module
 */

import { LayerfsError } from "../../errors.ts";
import { AT_FDCWD, close, O, openat } from "../../sys/fd_linux.ts";
import { libc, SysError } from "../../sys/libc_linux.ts";
import { TarReader } from "../tar/reader.ts";
import type {
  ArchiveProgress,
  ExtractFormat,
  TarSource,
  WhiteoutCodec,
} from "../types.ts";
import { whiteoutCodec } from "../whiteout/mod.ts";
import { extract } from "./_engine.ts";
import { prefetchFile } from "./_prefetch.ts";

export type { ExtractFormat } from "../types.ts";

/** Options of {@link applyTar}. */
export interface ApplyTarOptions {
  /**
   * What OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`) become:
   * - `"vfs"`: applied as deletions, so applying an image's layers one after
   *   the other into the same directory gives its root filesystem;
   * - `"overlay"`: 0/0 char devices and the opaque xattr (an overlayfs upper/lower dir);
   * - `"aufs"`: `.wh.` files kept as they are (aufs internals skipped);
   * - `"none"`: no conversion, `.wh.` entries are ordinary files (plain `tar -x`).
   * @default {"vfs"}
   */
  format?: ExtractFormat;
  /**
   * Give entries the tar's numeric uid/gid. Needs CAP_CHOWN.
   * @default {true as root, false otherwise}
   */
  sameOwner?: boolean;
  /**
   * Create char and block device entries (needs CAP_MKNOD); when false they are skipped.
   * @default {true as root, false otherwise}
   */
  devices?: boolean;
  /**
   * Overlay format only: mark opaque dirs with `user.overlay.opaque` (for
   * mounts with the `userxattr` option) instead of `trusted.overlay.opaque`.
   * @default {false as root, true otherwise}
   */
  userXattr?: boolean;
  /** Called every 1024 entries and at the end. */
  onProgress?: (p: ArchiveProgress) => void;
}

/**
 * Extracts the tar `tar` into the existing directory `dirPath`, converting OCI
 * whiteouts as `options.format` says. Returns the bytes of regular files the
 * tar left in the directory (hardlinks counted once).
 *
 * @param dirPath An existing directory (the caller's path; it may itself be reached through symlinks).
 * @param tar The archive: a stream, bytes or an open file.
 * @param options See {@link ApplyTarOptions}.
 * @returns Bytes of regular files written.
 * @throws {InvalidArchive} A malformed or truncated tar (no end-of-archive
 *   blocks), or an unsafe entry, named in the error: a name or hard-link
 *   target climbing above the directory, a hardlink to outside the tar or to
 *   itself, a parent reached through a symlink leading out, unknown mode bits,
 *   ids of 2^32 - 1 and above, `.wh..`, or a name whose parent is not a
 *   directory. Entries before it stay (see "On failure").
 * @throws {LayerfsError} The directory is missing, or the file system refused
 *   a write (ENOSPC, EACCES, ...).
 *
 * Requires `--allow-ffi` and `--allow-read` (for /proc/self/status).
 *
 * @example Unpack an image's layers into one root filesystem
 * ```ts ignore
 * import { applyTar } from "@layerfs/layerfs";
 *
 * await Deno.mkdir("rootfs");
 * for (const layer of ["layer1.tar", "layer2.tar"]) {
 *   using f = await Deno.open(layer);
 *   await applyTar("rootfs", f);          // whiteouts become deletions
 * }
 * ```
 */
export async function applyTar(
  dirPath: string,
  tar: TarSource,
  options: ApplyTarOptions = {},
): Promise<number> {
  const fd = openTarget(dirPath);
  try {
    return await applyTarAt(fd, tar, options);
  } finally {
    close(fd);
  }
}

/**
 * {@link applyTar} below an already open directory fd (used by the store).
 * Internal to the archive code.
 */
export function applyTarAt(
  dirFd: number,
  tar: TarSource,
  options: ApplyTarOptions = {},
): Promise<number> {
  const root = libc().geteuid() === 0;
  const codec = whiteoutCodec(options.format ?? "vfs", {
    userXattr: options.userXattr ?? !root,
  });
  return applyCodecAt(dirFd, tar, codec, options);
}

/**
 * {@link applyTarAt} with the whiteout codec given (the store's backend's).
 * Internal to the archive code; `options.format` and `userXattr` are ignored.
 */
export function applyCodecAt(
  dirFd: number,
  tar: TarSource | AsyncIterable<Uint8Array>,
  codec: WhiteoutCodec,
  options: ApplyTarOptions = {},
): Promise<number> {
  const root = libc().geteuid() === 0;
  const source = tar instanceof Deno.FsFile ? prefetchFile(tar) : tar;
  // Extraction writes no header back: records it does not use need no copy.
  return extract(dirFd, new TarReader(source, { keepOtherPax: false }), {
    codec,
    sameOwner: options.sameOwner ?? root,
    devices: options.devices ?? root,
    onProgress: options.onProgress,
  });
}

/** Opens the caller's target directory (O_PATH; following the caller's own symlinks is fine). */
export function openTarget(dirPath: string): number {
  try {
    return openat(AT_FDCWD, dirPath, O.PATH | O.DIRECTORY);
  } catch (e) {
    if (e instanceof SysError) {
      throw new LayerfsError(
        `Cannot extract into ${JSON.stringify(dirPath)}: ${e.code}; ` +
          `it must be an existing directory`,
        { cause: e },
      );
    }
    throw e;
  }
}
