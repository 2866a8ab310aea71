/**
 * Whiteout codecs, one per on-disk format (overlay, aufs, vfs, and "none" for
 * plain dirs), each implementing {@link WhiteoutCodec}: extract, export and
 * changes consult the codec instead of comparing format names. A backend
 * names its codec; until the backends hold codec objects, a format name is
 * resolved with {@link whiteoutCodec}.
 *
 * @module
 */

import type {
  ExtractFormat,
  LayerDirs,
  WhiteoutCodec,
  WhiteoutFormat,
} from "../types.ts";
import { aufsCodec } from "./aufs.ts";
import { noneCodec } from "./none.ts";
import { overlayCodec, overlayUserXattrCodec } from "./overlay.ts";
import { vfsCodec } from "./vfs.ts";

export { aufsCodec } from "./aufs.ts";
export { noneCodec } from "./none.ts";
export { overlayCodec, overlayUserXattrCodec } from "./overlay.ts";
export { vfsCodec } from "./vfs.ts";
export type { WhiteoutCodec } from "../types.ts";

const CODECS: Record<ExtractFormat, WhiteoutCodec> = {
  overlay: overlayCodec,
  aufs: aufsCodec,
  vfs: vfsCodec,
  none: noneCodec,
};

/** Options of {@link whiteoutCodec}. */
export interface WhiteoutCodecOptions {
  /**
   * overlay: mark opaque dirs with `user.overlay.opaque` (mounts with
   * `userxattr`) instead of `trusted.overlay.opaque`. Other formats ignore it.
   * @default {false}
   */
  userXattr?: boolean;
}

/**
 * The codec of a format name.
 *
 * @param format A backend's whiteout format, or "none".
 * @param options See {@link WhiteoutCodecOptions}.
 * @returns The codec object (shared; codecs hold no state).
 * @throws {TypeError} An unknown format name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { overlayUserXattrCodec, whiteoutCodec } from "./mod.ts";
 * const codec = whiteoutCodec("overlay", { userXattr: true });
 * assert.equal(codec.name, "overlay");
 * assert.equal(codec, overlayUserXattrCodec);
 * ```
 */
export function whiteoutCodec(
  format: ExtractFormat,
  options: WhiteoutCodecOptions = {},
): WhiteoutCodec {
  if (!Object.hasOwn(CODECS, format)) {
    throw new TypeError(
      `Unknown whiteout format ${JSON.stringify(format)}; use one of ${
        Object.keys(CODECS).join(", ")
      }`,
    );
  }
  const codec = CODECS[format];
  return options.userXattr && codec === overlayCodec
    ? overlayUserXattrCodec
    : codec;
}

/**
 * The codec a store's {@link LayerDirs} names: its `codec`, or the one of its
 * `format` (with its `userXattr`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerCodec, vfsCodec } from "./mod.ts";
 * assert.equal(layerCodec({ dir: "/d", format: "vfs", parentDirs: [] }), vfsCodec);
 * ```
 */
export function layerCodec(layer: LayerDirs): WhiteoutCodec {
  return layer.codec ??
    whiteoutCodec(layer.format, { userXattr: layer.userXattr ?? false });
}

/** Re-exported for callers that only name formats. */
export type { ExtractFormat, WhiteoutFormat };
