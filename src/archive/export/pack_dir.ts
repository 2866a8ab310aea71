/**
 * `packDir`: a directory as a reproducible tar stream, for users without a
 * store.
 *
 * @module
 */

import type { ArchiveProgress } from "../types.ts";
import { whiteoutCodec } from "../whiteout/mod.ts";
import { pumpStream } from "./_tar_stream.ts";
import { loadModule } from "../../_load_module.ts";

// The walk and the pump load on the first read: a process that imports
// mod.ts to apply tars does not load them at start-up.
const pumpModule = () =>
  loadModule<typeof import("./_tar_pump.ts")>(
    new URL("./_tar_pump.ts", import.meta.url),
  );
const walkModule = () =>
  loadModule<typeof import("./_walk.ts")>(
    new URL("./_walk.ts", import.meta.url),
  );

/** Options of {@link packDir}. */
export interface PackDirOptions {
  /**
   * On-disk whiteouts to convert to OCI form: "overlay" (0/0 char devices and
   * opaque xattrs, as in an overlayfs upper dir), "aufs" (drop `/.wh..wh.*`
   * bookkeeping), or "none" (every entry as it is).
   * @default {"none"}
   */
  whiteouts?: "overlay" | "aufs" | "none";
  /** Called after each chunk (each read) with bytes and entries so far. */
  onProgress?: (p: ArchiveProgress) => void;
}

/**
 * Streams the tar of the tree at `dirPath`: entries relative to it (no "./"),
 * directories as "name/", the root itself not included, sorted by name bytes
 * (parents first) so the same tree gives the same bytes; numeric uid/gid,
 * PAX nanosecond mtimes, xattrs (values as raw bytes; `*.overlay.*` and
 * `security.selinux` left out), hard links as link entries, sockets skipped.
 * Symlinks are never followed: the walk uses directory fds and O_NOFOLLOW.
 *
 * @param dirPath The directory to pack.
 * @param options Whiteout conversion and progress; see {@link PackDirOptions}.
 * @returns A pull-based byte stream: 1 MiB chunks to a default reader, or
 *   straight into the caller's buffer with a BYOB reader (reused buffers are
 *   the fastest way to write a tar to a file: see `writeToFile`). Errors
 *   error it: `LayerfsError` when `dirPath` is not a directory, `StoreError`
 *   for a file that changes size (or an entry that changes type) while it
 *   is packed, as moby's exporter fails on it (GNU tar pads with zeros and
 *   exits 1). The walk loads on the first read (a tool that imports mod.ts
 *   only to apply tars does not load it): from a local copy of layerfs that
 *   needs read access to it, else the stream errors with
 *   `PermissionRequired` (or import `src/preload.ts` first).
 *
 * @example Pack a directory into a file
 * ```ts
 * import assert from "node:assert/strict";
 * import { packDir } from "./pack_dir.ts";
 * import { writeToFile } from "../write_file.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/etc`);
 * await Deno.writeTextFile(`${dir}/etc/hosts`, "127.0.0.1 localhost\n");
 * using out = await Deno.create(`${dir}.tar`);
 * const bytes = await writeToFile(packDir(dir), out);
 * assert.equal(bytes, (await Deno.stat(`${dir}.tar`)).size);
 * assert.equal(bytes % 512, 0); // whole tar blocks
 * await Deno.remove(dir, { recursive: true });
 * await Deno.remove(`${dir}.tar`);
 * ```
 */
export function packDir(
  dirPath: string,
  options: PackDirOptions = {},
): ReadableStream<Uint8Array> {
  return pumpStream(async () => {
    const [{ TarPump }, { walkTree }] = await Promise.all([
      pumpModule(),
      walkModule(),
    ]);
    return new TarPump(
      () =>
        walkTree(dirPath, {
          codec: whiteoutCodec(options.whiteouts ?? "none"),
        }),
      options.onProgress,
    );
  });
}
