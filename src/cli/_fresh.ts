/**
 * Internal: the line `save` and `push` print for a layer that was exported
 * afresh (no exact rebuild from its tar-split record).
 *
 * @module
 */

import type { FreshLayer } from "../image/save.ts";

/**
 * Says which layer was exported afresh, whether its DiffID (and so the
 * image id) changed, and why.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { freshLine } from "./_fresh.ts";
 * const f = { layer: "ab12", reason: "it has no tar-split record", diffId: "sha256:00", sameDiffId: true };
 * assert.equal(freshLine(f), "Layer ab12 exported afresh (same DiffID): it has no tar-split record");
 * ```
 */
export function freshLine(f: FreshLayer): string {
  return `Layer ${f.layer} exported afresh (${
    f.sameDiffId ? "same" : "new"
  } DiffID): ${f.reason}`;
}
