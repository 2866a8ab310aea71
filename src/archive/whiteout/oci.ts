/**
 * The OCI tar form of whiteouts, which every codec reads and writes (OCI
 * image-spec, layer.md "Whiteouts"; Docker took it from aufs):
 *
 * - `<dir>/.wh.<name>`: `<name>` of the parent layers is deleted;
 * - `<dir>/.wh..wh..opq`: `<dir>` is opaque, the parents' entries below it
 *   are hidden;
 * - other `.wh..wh.*` names are aufs's bookkeeping (`/.wh..wh.plnk`, its
 *   hardlink pool; `/.wh..wh.aufs`, its whiteout base), never image content.
 *
 * @module
 */

import { InvalidArchive } from "../../errors.ts";
import type { EntryType } from "../tar/header.ts";
import type { WhiteoutAction } from "../types.ts";

/**
 * Prefix of every whiteout name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WH_PREFIX } from "./oci.ts";
 * assert.equal(WH_PREFIX + "passwd", ".wh.passwd");
 * ```
 */
export const WH_PREFIX = ".wh.";
/**
 * Prefix of aufs metadata names (`.wh..wh.*`), the opaque marker included.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WH_META_PREFIX, WH_OPAQUE } from "./oci.ts";
 * assert.equal(WH_META_PREFIX, ".wh..wh.");
 * assert.ok(WH_OPAQUE.startsWith(WH_META_PREFIX));
 * ```
 */
export const WH_META_PREFIX = ".wh..wh.";
/**
 * The opaque-directory marker (also aufs's on-disk marker).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WH_OPAQUE } from "./oci.ts";
 * assert.equal(`etc/${WH_OPAQUE}`, "etc/.wh..wh..opq");
 * ```
 */
export const WH_OPAQUE = ".wh..wh..opq";
/**
 * aufs's hardlink pool dir at the layer root.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WH_PLNK } from "./oci.ts";
 * assert.equal(WH_PLNK, ".wh..wh.plnk");
 * ```
 */
export const WH_PLNK = ".wh..wh.plnk";
/**
 * aufs's whiteout base (and xino) at the layer root.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WH_AUFS } from "./oci.ts";
 * assert.equal(WH_AUFS, ".wh..wh.aufs");
 * ```
 */
export const WH_AUFS = ".wh..wh.aufs";

const PLNK_DIR = WH_PLNK + "/";

/** Shared action values: classification allocates only for whiteouts. */
export const ENTRY: WhiteoutAction = { kind: "entry" };
const MARKER: WhiteoutAction = { kind: "marker" };
const POOL: WhiteoutAction = { kind: "pool" };
const SKIP: WhiteoutAction = { kind: "skip" };
const OPAQUE: WhiteoutAction = { kind: "opaque" };

/**
 * Classifies a tar entry by its OCI name. `keepMarkers`: the format stores
 * `.wh.` files and the opaque marker as they are (aufs), so they are markers
 * (files whose directory must be real) rather than whiteouts to convert.
 *
 * aufs's top-level internals are skipped, except regular files in
 * `.wh..wh.plnk/`: tars exported from aufs may hardlink to them, so (like
 * moby's UnpackLayer) they are extracted for the duration of the archive, as
 * plain files whatever their names (aufs names them `<ino>.<id>`).
 *
 * @throws {InvalidArchive} `.wh.` followed by nothing, `.` or `..`: these
 *   would white out the directory itself or its parent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifyOci } from "./oci.ts";
 * assert.deepEqual(
 *   classifyOci("file", "etc/.wh.passwd", ".wh.passwd", "etc/.wh.passwd", false),
 *   { kind: "whiteout", name: "passwd" },
 * );
 * ```
 */
export function classifyOci(
  type: EntryType,
  path: string,
  base: string,
  entryName: string,
  keepMarkers: boolean,
): WhiteoutAction {
  if (path.startsWith(WH_META_PREFIX) && !path.startsWith(WH_OPAQUE)) {
    // .wh..wh.plnk (hardlink pool), .wh..wh.aufs (xino/trunc): aufs's own
    // bookkeeping, never part of an image (moby skips them the same way).
    return type === "file" && path.startsWith(PLNK_DIR) ? POOL : SKIP;
  }
  if (!base.startsWith(WH_PREFIX)) return ENTRY;
  if (base.startsWith(WH_META_PREFIX)) {
    if (base === WH_OPAQUE) return keepMarkers ? MARKER : OPAQUE;
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
  return keepMarkers ? MARKER : { kind: "whiteout", name };
}

/**
 * True for overlayfs's own xattrs (`trusted.overlay.*`, and `user.overlay.*`
 * under `userxattr`): opaque, origin, impure, redirect, metacopy. Every codec
 * drops them: taken from a tar they would let a layer forge redirects,
 * origins, metacopy or opaque state of a union mount, and exported they mean
 * nothing on another machine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isOverlayXattr } from "./oci.ts";
 * assert.equal(isOverlayXattr("trusted.overlay.opaque"), true);
 * assert.equal(isOverlayXattr("user.mime"), false);
 * ```
 */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith("trusted.overlay.") ||
    name.startsWith("user.overlay.");
}

/**
 * Which xattrs are part of a layer's content (exported, and compared by
 * Changes) for `codec`. Left out:
 * - the union fs's own (`codec.unionXattr`);
 * - `security.selinux`: a host-assigned label, not content. The runtime
 *   relabels a container's rootfs; carrying a label across machines would
 *   write a label the other host's policy may not know (moby and containerd
 *   do not export it either).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isContentXattr } from "./oci.ts";
 * import { overlayCodec } from "./mod.ts";
 * assert.equal(isContentXattr(overlayCodec, "security.selinux"), false);
 * assert.equal(isContentXattr(overlayCodec, "user.mime"), true);
 * ```
 */
export function isContentXattr(
  codec: { unionXattr(name: string): boolean },
  name: string,
): boolean {
  return !codec.unionXattr(name) && name !== "security.selinux";
}

/**
 * The content xattrs of a map (see {@link isContentXattr}), in name order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { contentXattrs } from "./oci.ts";
 * import { vfsCodec } from "./mod.ts";
 * const x = new Map([["user.b", new Uint8Array()], ["user.overlay.opaque", new Uint8Array([0x79])]]);
 * assert.deepEqual([...contentXattrs(vfsCodec, x).keys()], ["user.b"]);
 * ```
 */
export function contentXattrs(
  codec: { unionXattr(name: string): boolean },
  xattrs: Map<string, Uint8Array>,
): Map<string, Uint8Array> {
  if (xattrs.size === 0) return xattrs;
  const keys = [...xattrs.keys()].filter((k) => isContentXattr(codec, k))
    .sort();
  const out = new Map<string, Uint8Array>();
  for (const k of keys) out.set(k, xattrs.get(k)!);
  return out;
}

/**
 * True when two xattr maps hold the same content xattrs with the same bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sameContentXattrs } from "./oci.ts";
 * import { vfsCodec } from "./mod.ts";
 * const a = new Map([["user.a", new Uint8Array([1])]]);
 * assert.equal(sameContentXattrs(vfsCodec, a, new Map()), false);
 * assert.equal(sameContentXattrs(vfsCodec, a, new Map([["user.a", new Uint8Array([1])]])), true);
 * ```
 */
export function sameContentXattrs(
  codec: { unionXattr(name: string): boolean },
  a: Map<string, Uint8Array>,
  b: Map<string, Uint8Array>,
): boolean {
  const ca = contentXattrs(codec, a);
  const cb = contentXattrs(codec, b);
  if (ca.size !== cb.size) return false;
  for (const [k, v] of ca) {
    const w = cb.get(k);
    if (!w || w.length !== v.length) return false;
    for (let i = 0; i < v.length; i++) if (v[i] !== w[i]) return false;
  }
  return true;
}
