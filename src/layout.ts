/**
 * The on-disk layout of a store: Docker's aufs layout (`layers/`, `diff/`,
 * `mnt/`) plus the store's own records. Pure path arithmetic on already
 * validated ids. It lives at the top of `src/` because the store, the
 * backends and the helper all speak it; what a backend keeps beside it
 * (overlay's `work/` and `l/`) belongs to that backend.
 *
 * ```
 * <root>/layerfs.json    format version and backend (fixed at init)
 * <root>/layers/<id>     parent ids, nearest first, one per line; its presence is the commit point
 * <root>/meta/<id>       JSON: readWrite, mountLabel
 * <root>/tarsplit/<id>   tar-split record of a layer applied from a tar (archive/tarsplit)
 * <root>/diff/<id>/      the layer's own content
 * <root>/mnt/<id>/       mount point of the union view (backends that mount)
 * <root>/run/            lock file; run/counts/<id>: a layer's outstanding gets;
 *                        run/holds/<pid>-<starttime>: views a process took for one call
 * <root>/staging/        layers being built; swept on open
 * ```
 *
 * @module
 */

/** Directories of a store root that the store itself keeps, whatever the backend. */
export const STORE_DIRS = [
  "layers",
  "diff",
  "mnt",
  "meta",
  "tarsplit",
  "run",
  "staging",
] as const;

/** Directories that hold one entry per layer and are the store's own. */
export const PER_LAYER_DIRS = ["diff", "mnt", "meta", "tarsplit"] as const;

/**
 * Paths of a store rooted at `root`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "./layout.ts";
 * const l = new StoreLayout("/var/lib/layerfs/");
 * assert.equal(l.diff("base"), "/var/lib/layerfs/diff/base");
 * assert.equal(l.mnt("app"), "/var/lib/layerfs/mnt/app");
 * ```
 */
export class StoreLayout {
  /** Absolute store root. */
  readonly root: string;
  /** Layout of the store at absolute `root` (trailing slashes dropped). */
  constructor(root: string) {
    this.root = root.length > 1 ? root.replace(/\/+$/, "") : root;
  }
  /** `layerfs.json`. */
  get config(): string {
    return `${this.root}/layerfs.json`;
  }
  /** `layers/<id>` (or the `layers` dir). */
  layers(id?: string): string {
    return id === undefined
      ? `${this.root}/layers`
      : `${this.root}/layers/${id}`;
  }
  /** `meta/<id>`. */
  meta(id: string): string {
    return `${this.root}/meta/${id}`;
  }
  /** `tarsplit/<id>`: the record that rebuilds the tar the layer was applied from. */
  tarsplit(id: string): string {
    return `${this.root}/tarsplit/${id}`;
  }
  /** `diff/<id>`. */
  diff(id: string): string {
    return `${this.root}/diff/${id}`;
  }
  /** `mnt/<id>`. */
  mnt(id: string): string {
    return `${this.root}/mnt/${id}`;
  }
  /** `run/` (lock and counts). */
  get run(): string {
    return `${this.root}/run`;
  }
  /** `run/counts/<id>` (or the `run/counts` dir): the layer's outstanding gets. */
  counts(id?: string): string {
    return id === undefined
      ? `${this.root}/run/counts`
      : `${this.root}/run/counts/${id}`;
  }
  /**
   * `run/holds/<name>` (or the `run/holds` dir): the views process `<name>`
   * (`<pid>-<starttime>`) took for the duration of one call (`holds.ts`).
   */
  holds(name?: string): string {
    return name === undefined
      ? `${this.root}/run/holds`
      : `${this.root}/run/holds/${name}`;
  }
  /** `staging/` (or one entry of it). */
  staging(name?: string): string {
    return name === undefined
      ? `${this.root}/staging`
      : `${this.root}/staging/${name}`;
  }
}
