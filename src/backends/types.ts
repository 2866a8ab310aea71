/**
 * What a backend is. A backend owns everything about one way of turning a
 * parent chain into a root filesystem: what it needs from the host, the
 * per-layer entries it keeps beside `diff/<id>` (overlay's `work/<id>` and
 * `l/` links), how deletions are stored (its whiteout format), what it can
 * promise (its {@link BackendCapabilities}) and how a layer's view is
 * mounted, as a pure function to a {@link MountPlan}. The store asks; it
 * never compares backend names.
 *
 * @module
 */

import type { WhiteoutCodec, WhiteoutFormat } from "../archive/types.ts";
import type { StoreLayout } from "../layout.ts";
import type { MountPlan } from "../mount/plan.ts";

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

/** What a backend can promise; the store and the tests branch on these, never on names. */
export interface BackendCapabilities {
  /** Views are mounts on `mnt/<id>` (else a layer's view is its own `diff/<id>`). */
  readonly mounts: boolean;
  /** A new layer's `diff/<id>` starts as a full copy of its parent's. */
  readonly copiesParent: boolean;
  /**
   * Read-only layers get views the kernel keeps read-only. vfs cannot: its
   * view is the layer's own directory.
   */
  readonly readOnlyViews: boolean;
  /** The longest parent chain a view can stack. */
  readonly maxDepth: number;
}

/** What a backend needs from the host, checked by `chooseBackend`. */
export interface BackendRequirements {
  /** The kernel filesystem it mounts (in /proc/filesystems), if any. */
  readonly kernelFs?: string;
  /** Backing filesystems (statfs names) that cannot hold its layers. */
  readonly unsuitableBackingFs: readonly string[];
  /** Whether readdir must report d_type under the store (whiteouts are files). */
  readonly needsDType: boolean;
}

/** Settings a backend fixes in `layerfs.json` when a store is initialised. */
export interface BackendSettings {
  /** Overlay keeps whiteout/opaque state in `user.overlay.*` (mounted with `userxattr`). */
  userXattr?: boolean;
}

/**
 * A union-filesystem backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Backend } from "./types.ts";
 * import { vfsBackend } from "./vfs.ts";
 * const describe = (b: Backend) => `${b.name} (${b.whiteoutFormat} whiteouts)`;
 * assert.equal(describe(vfsBackend), "vfs (vfs whiteouts)");
 * ```
 */
export interface Backend<N extends string = string> {
  /** Its name, as stored in layerfs.json and given to `--backend`. */
  readonly name: N;
  /** One line for `--help` and `status`: how a view is made. */
  readonly summary: string;
  /** How deletions are stored in `diff/<id>` (its name, for status). */
  readonly whiteoutFormat: WhiteoutFormat;
  /** The codec extract, export and changes use for its layers, given its settings. */
  whiteoutCodec(settings: BackendSettings): WhiteoutCodec;
  /** What it can promise. */
  readonly capabilities: BackendCapabilities;
  /** What it needs from the host. */
  readonly requirements: BackendRequirements;
  /** Top-level dirs under the root it keeps (created at open, swept for leftovers). */
  readonly ownDirs: readonly string[];
  /** Settings fixed at init, given whether the initialising user is root. */
  settingsAtInit(isRoot: boolean): BackendSettings;
  /** Status rows (`[key, value]`) about its settings and mount API. */
  statusRows(settings: BackendSettings): [string, string][];
  /** Per-layer paths it keeps, for `metadata()` (e.g. `{ work: ".../work/<id>" }`). */
  layerPaths(layout: StoreLayout, id: string): Record<string, string>;
  /** Creates its per-layer entries when a layer is published (caller holds the store lock). */
  prepareLayer(layout: StoreLayout, id: string): Promise<void>;
  /** Removes its per-layer entries; absent is fine (caller holds the store lock). */
  removeLayer(layout: StoreLayout, id: string): Promise<void>;
  /**
   * Entries of {@link ownDirs} (root-relative) that belong to no layer in
   * `live`: leftovers of a crash, for the open-time sweep and `check`.
   */
  leftovers(layout: StoreLayout, live: ReadonlySet<string>): Promise<string[]>;
  /**
   * Its per-layer entries (root-relative) that existing layer `id` lacks
   * (deleted by hand): damage `check` reports. Only entries that hold no
   * data of the layer, so {@link restoreEntries} can remake them exactly.
   */
  missingEntries(layout: StoreLayout, id: string): Promise<string[]>;
  /** Remakes the entries {@link missingEntries} reports; present ones are left (caller holds the store lock). */
  restoreEntries(layout: StoreLayout, id: string): Promise<void>;
  /** Plans the view of a layer (pure). */
  planMount(input: LayerMountInput): MountPlan;
}
