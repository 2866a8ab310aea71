/**
 * The on-disk layout of a store (Docker's aufs layout plus what overlay
 * needs). Pure path arithmetic on already validated ids.
 *
 * ```
 * <root>/layerfs.json    format version and backend (fixed at init)
 * <root>/layers/<id>     parent ids, nearest first, one per line; its presence is the commit point
 * <root>/meta/<id>       JSON: readWrite, mountLabel
 * <root>/diff/<id>/      the layer's own content
 * <root>/mnt/<id>/       mount point of the union view
 * <root>/work/<id>/      overlay's workdir
 * <root>/l/<short>       symlink to ../diff/<id>; short = shortLinkName(id) (mount(2) fallback)
 * <root>/run/            lock file and persisted mount counts
 * <root>/staging/        layers being built; swept on open
 * ```
 *
 * @module
 */

/** Directories of a store root that hold one entry per layer. */
export const PER_LAYER_DIRS = ["diff", "mnt", "work", "meta"] as const;

/**
 * Paths of a store rooted at `root`.
 *
 * @example
 * ```ts
 * import { StoreLayout } from "./layout.ts";
 * const l = new StoreLayout("/var/lib/layerfs");
 * console.log(l.diff("base")); // /var/lib/layerfs/diff/base
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
  /** `diff/<id>`. */
  diff(id: string): string {
    return `${this.root}/diff/${id}`;
  }
  /** `mnt/<id>`. */
  mnt(id: string): string {
    return `${this.root}/mnt/${id}`;
  }
  /** `work/<id>`. */
  work(id: string): string {
    return `${this.root}/work/${id}`;
  }
  /** `l/<short>` (or the `l` dir). */
  link(short?: string): string {
    return short === undefined ? `${this.root}/l` : `${this.root}/l/${short}`;
  }
  /** `run/` (lock and counts). */
  get run(): string {
    return `${this.root}/run`;
  }
  /** `staging/` (or one entry of it). */
  staging(name?: string): string {
    return name === undefined
      ? `${this.root}/staging`
      : `${this.root}/staging/${name}`;
  }
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/**
 * The short link name of a layer (`l/<name>` points to `../diff/<id>`): 12
 * base32 characters of a 64-bit FNV-1a hash of the id. moby's overlay2 uses
 * random 26-character links, which caps it at 128 layers in a 4 KiB option
 * string; 15 bytes per layer ("l/" + 12 + ":") fit about 260. Deterministic,
 * so planning a mount reads no per-parent metadata.
 *
 * @example
 * ```ts
 * import { shortLinkName } from "./layout.ts";
 * console.log(shortLinkName("base").length); // 12
 * ```
 */
export function shortLinkName(id: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(id)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  let out = "";
  for (let i = 0; i < 12; i++) {
    out += BASE32[Number(h & 31n)];
    h >>= 5n;
  }
  return out;
}
