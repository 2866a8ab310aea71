/**
 * The helper's mount planning from store metadata it read itself.
 *
 * @module
 */

import type { OverlayMountPlan } from "../src/mount/plan.ts";

/** What the helper read from the store (already validated). */
export interface StoreMetadata {
  /** Store root. */
  root: string;
  /** Layer id. */
  id: string;
  /** Parent ids, nearest first. */
  parents: string[];
  /** Read-write (container) layer. */
  readWrite: boolean;
}

/**
 * The overlay plan for a layer, or undefined when it has no parents (its
 * view is its own dir). nosuid and nodev are always set.
 */
export function planFromMetadata(
  m: StoreMetadata,
): OverlayMountPlan | undefined {
  if (m.parents.length === 0) return undefined;
  return {
    kind: "overlay",
    target: `${m.root}/mnt/${m.id}`,
    lowerdirs: m.parents.map((p) => `${m.root}/diff/${p}`),
    upperdir: `${m.root}/diff/${m.id}`,
    workdir: `${m.root}/work/${m.id}`,
    readOnly: !m.readWrite,
    nosuid: true,
    nodev: true,
  };
}
