/**
 * The "none" codec: no conversion at all, for plain directories (`applyTar`
 * and `packDir` with `"none"`, like `tar -x`/`tar -c`). `.wh.` entries are
 * ordinary files both ways; only overlay's own xattrs are still dropped.
 *
 * @module
 */

import type {
  WhiteoutAction,
  WhiteoutCodec,
  WhiteoutTarget,
} from "../types.ts";
import { PlainTreeCodec } from "./_plain_tree.ts";
import { ENTRY } from "./oci.ts";

class NoneCodec extends PlainTreeCodec {
  readonly whiteoutNamesAreData = false;
  readonly name = "none";

  classify(): WhiteoutAction {
    return ENTRY;
  }

  // classify never reports a whiteout: these are never called.
  applyWhiteout(
    _t: WhiteoutTarget,
    _parent: string,
    _name: string,
    _entry: string,
  ): void {}

  applyOpaque(_t: WhiteoutTarget, _parent: string, _entry: string): void {}
}

/**
 * The codec that converts nothing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { noneCodec } from "./none.ts";
 * assert.equal(noneCodec.classify("file", "a/.wh.b", ".wh.b", "a/.wh.b").kind, "entry");
 * ```
 */
export const noneCodec: WhiteoutCodec = new NoneCodec();
