/**
 * Internal: OCI whiteouts (`.wh.<name>`, `<dir>/.wh..wh..opq`) and how each
 * on-disk format represents them.
 *
 * - overlay: a whiteout is a 0/0 character device `<name>`; an opaque dir has
 *   the xattr `trusted.overlay.opaque=y` (`user.overlay.opaque` when unprivileged,
 *   for mounts with `userxattr`). The layer dir only holds this layer, so an
 *   opaque dir keeps every entry this tar puts in it (moby's
 *   overlayWhiteoutConverter in pkg/archive/archive_linux.go does the same).
 * - aufs: the `.wh.` files are kept as they are (aufs reads them directly);
 *   aufs's own internals `.wh..wh.plnk` and `.wh..wh.aufs` are skipped.
 * - vfs: the layer dir is a full copy of the parent, so a whiteout deletes
 *   `<name>` and an opaque marker empties the dir of everything this tar did
 *   not put there (moby's UnpackLayer keeps `unpackedPaths` for this).
 * - none: no conversion at all; `.wh.` entries are extracted like any file.
 *
 * @module
 */

import { InvalidArchive } from "../../errors.ts";

/** Prefix of every whiteout name. */
export const WH_PREFIX = ".wh.";
/** Prefix of aufs metadata names (`.wh..wh.*`). */
export const WH_META_PREFIX = ".wh..wh.";
/** aufs's hardlink pool dir at the layer root. */
export const WH_PLNK = ".wh..wh.plnk";
/** The opaque-directory marker. */
export const WH_OPAQUE = ".wh..wh..opq";

/** Formats {@link classifyWhiteout} knows. */
export type ExtractFormat = "overlay" | "aufs" | "vfs" | "none";

/** What to do with an entry, by its last name component. */
export type WhiteoutAction =
  /** Not a whiteout (or the format keeps it): extract normally. */
  | { kind: "entry" }
  /** aufs internals: ignore the entry. */
  | { kind: "skip" }
  /** `.wh..wh..opq`: the parent dir is opaque. */
  | { kind: "opaque" }
  /** `.wh.<name>`: `<name>` in the parent dir is deleted. */
  | { kind: "whiteout"; name: string };

const ENTRY: WhiteoutAction = { kind: "entry" };
const SKIP: WhiteoutAction = { kind: "skip" };
const OPAQUE: WhiteoutAction = { kind: "opaque" };

/**
 * Classifies an entry by its base name for `format`.
 *
 * @throws {InvalidArchive} `.wh.` followed by nothing, `.` or `..`: these
 *   would white out the directory itself or its parent.
 */
export function classifyWhiteout(
  format: ExtractFormat,
  base: string,
  entryName: string,
): WhiteoutAction {
  if (format === "none" || !base.startsWith(WH_PREFIX)) return ENTRY;
  if (base.startsWith(WH_META_PREFIX)) {
    if (base === WH_OPAQUE) return format === "aufs" ? ENTRY : OPAQUE;
    // .wh..wh.plnk (hardlink pool), .wh..wh.aufs (xino/trunc): aufs's own
    // bookkeeping, never part of an image (moby skips them the same way).
    return SKIP;
  }
  const name = base.slice(WH_PREFIX.length);
  if (name === "" || name === "." || name === "..") {
    throw new InvalidArchive(
      `whiteout ${
        JSON.stringify(base)
      } names no file (it would delete the directory itself or its parent)`,
      entryName,
    );
  }
  return format === "aufs" ? ENTRY : { kind: "whiteout", name };
}
