/**
 * The one rule for unused image layers (see `prune.ts`): pure, so
 * `layerfs check` and mod.ts can use it without loading the image store.
 *
 * @module
 */

import type { LayerInfo } from "../store/store.ts";

/** Ids loads and pulls give layers (chain ids), and names of blobs (sha256 hex). */
export const CHAIN_ID = /^[0-9a-f]{64}$/;

/**
 * The unused image layers among `layers` (the rule is in `prune.ts`'s module doc), top first:
 * each comes before its parent, so removing them in this order never meets
 * a layer with children. Pure.
 *
 * @param idx The image index (its images' layers).
 * @param layers Every layer of the store: id, parent and mount count.
 * @returns Their ids, children before parents.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unusedImageLayers } from "./unused_layers.ts";
 * const [a, b, c] = ["a", "b", "c"].map((x) => x.repeat(64));
 * const idx = { version: 1 as const, refs: {}, images: {} };
 * const d = "d".repeat(64);
 * const layers = [
 *   { id: a, parent: undefined, mounts: 0, imageLayer: true as const },
 *   { id: b, parent: a, mounts: 0, imageLayer: true as const },
 *   { id: c, parent: undefined, mounts: 0, imageLayer: true as const },
 *   { id: "ctr", parent: c, mounts: 0 }, // a container on c keeps it
 *   { id: d, parent: undefined, mounts: 0 }, // no load made it: the user's
 * ];
 * assert.deepEqual(unusedImageLayers(idx, layers), [b, a]);
 * ```
 */
export function unusedImageLayers(
  idx: { images: Record<string, { layers: string[] }> },
  layers: Pick<LayerInfo, "id" | "parent" | "mounts" | "imageLayer">[],
): string[] {
  const named = new Set(Object.values(idx.images).flatMap((r) => r.layers));
  const children = new Map<string, string[]>();
  for (const l of layers) {
    if (l.parent === undefined) continue;
    const list = children.get(l.parent) ?? [];
    list.push(l.id);
    children.set(l.parent, list);
  }
  const byId = new Map(layers.map((l) => [l.id, l]));
  const unused = new Map<string, boolean>();
  const order: string[] = [];
  // Iterative post-order (chains can be hundreds of layers deep).
  const visit = (root: string) => {
    const stack: [string, boolean][] = [[root, false]];
    while (stack.length) {
      const [id, expanded] = stack.pop()!;
      if (unused.has(id)) continue;
      const kids = children.get(id) ?? [];
      if (!expanded) {
        stack.push([id, true]);
        for (const k of kids) if (!unused.has(k)) stack.push([k, false]);
        continue;
      }
      const l = byId.get(id);
      // Only what a load or pull made (marked in its meta): a container
      // layer or an `apply` under a 64-hex id is the user's, never a leftover.
      const ok = l !== undefined && l.imageLayer === true &&
        CHAIN_ID.test(id) && !named.has(id) && l.mounts === 0 &&
        kids.every((k) => unused.get(k) === true);
      unused.set(id, ok);
      if (ok) order.push(id);
    }
  };
  for (const l of [...layers].sort((x, y) => x.id < y.id ? -1 : 1)) {
    visit(l.id);
  }
  return order;
}
