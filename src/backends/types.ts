/**
 * What a backend is: a name, an on-disk whiteout format, and a pure function
 * from a layer's chain to a {@link MountPlan}.
 *
 * @module
 */

import type { WhiteoutFormat } from "../archive/types.ts";
import type { MountPlan } from "../mount/plan.ts";

/** Backends layerfs knows. */
export type BackendName = "overlay" | "aufs" | "vfs";

/** Everything a backend needs to plan a layer's view (plain data). */
export interface LayerMountInput {
  /** Absolute store root. */
  root: string;
  /** The layer (validated). */
  id: string;
  /** Its parent chain, nearest first (validated). */
  parents: string[];
  /** A read-write (container) layer; read-only layers get a read-only view. */
  readWrite: boolean;
  /** SELinux label for the view. */
  mountLabel?: string;
  /** Mount overlay with `userxattr` (the store keeps `user.overlay.*` xattrs). */
  userXattr?: boolean;
}

/**
 * A union-filesystem backend.
 *
 * @example
 * ```ts
 * import type { Backend } from "./types.ts";
 * const describe = (b: Backend) => `${b.name} (${b.whiteoutFormat} whiteouts)`;
 * ```
 */
export interface Backend {
  /** Its name, as stored in layerfs.json. */
  readonly name: BackendName;
  /** How deletions are stored in `diff/<id>`. */
  readonly whiteoutFormat: WhiteoutFormat;
  /** Whether each layer's diff dir starts as a full copy of its parent's. */
  readonly copiesParent: boolean;
  /** Whether layers need a `work/<id>` dir. */
  readonly needsWorkDir: boolean;
  /** Plans the union view of a layer. */
  planMount(input: LayerMountInput): MountPlan;
}
