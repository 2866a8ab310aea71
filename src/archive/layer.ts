/**
 * The contract between the store and the archive code: what the store calls to
 * turn a layer directory into an OCI layer tar and back. The store owns ids,
 * staging, locking and publishing; these functions only read or fill a directory.
 *
 * @module
 */

/** On-disk whiteout format of a backend. */
export type WhiteoutFormat = "overlay" | "aufs" | "vfs";

/** What `applyDiff` accepts as a tar. */
export type TarSource = ReadableStream<Uint8Array> | Uint8Array | Deno.FsFile;

/**
 * One changed path of a layer, as `docker diff` reports it.
 *
 * @example
 * ```ts
 * import type { Change } from "./layer.ts";
 * const c: Change = { path: "/etc/hosts", kind: "modify" };
 * ```
 */
export interface Change {
  /** Absolute path inside the layer's root filesystem. */
  path: string;
  /** What happened to it. */
  kind: "add" | "modify" | "delete";
}

/** How the store describes a layer directory to the archive code. */
export interface LayerDirs {
  /** The layer's own directory (`diff/<id>`, or a staging dir). */
  dir: string;
  /** Whiteout format of the store's backend. */
  format: WhiteoutFormat;
  /**
   * The parents' `diff/` dirs, nearest first. overlay/aufs use them to tell
   * "add" from "modify"; vfs compares `dir` (a full tree) against `parentDirs[0]`
   * (its parent's full tree).
   */
  parentDirs: string[];
  /**
   * Overlay opaque markers go in `user.overlay.opaque` instead of
   * `trusted.overlay.opaque` (stores mounted with `userxattr`).
   * @default {false}
   */
  userXattr?: boolean;
}

/** Progress of a long archive operation. */
export interface ArchiveProgress {
  /** Tar bytes consumed or produced so far. */
  bytes: number;
  /** Entries processed so far. */
  entries: number;
}

/** Options of {@link applyLayerTar}. */
export interface ApplyLayerOptions {
  /** Called now and then during extraction. */
  onProgress?: (p: ArchiveProgress) => void;
}

/** Options of {@link layerTar}. */
export interface LayerTarOptions {
  /** Called now and then while the tar is produced. */
  onProgress?: (p: ArchiveProgress) => void;
}

export { applyLayerTar } from "./extract/apply_layer.ts";
export { layerTar } from "./export/layer_tar.ts";
export { layerChanges } from "./changes/layer_changes.ts";
export { layerDiffSize } from "./changes/layer_size.ts";
