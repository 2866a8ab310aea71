/**
 * Mount plans: plain, serialisable data saying what to mount where. Backends
 * produce them (pure functions of the store's metadata), `src/mount/`
 * performs them, and the privileged helper performs the same plan after
 * re-planning it from the store's own metadata.
 *
 * @module
 */

/**
 * Nothing to mount: the layer's view is a plain directory (a layer without
 * parents, or any vfs layer).
 */
export interface NoMountPlan {
  /** Discriminant. */
  kind: "none";
  /** The directory that is the layer's view (`diff/<id>`). */
  target: string;
}

/**
 * A read-only bind mount of a layer's own dir: the view of a read-only layer
 * without parents on backends that mount, so an image layer's view is never
 * writable (its `diff/<id>` is).
 */
export interface BindMountPlan {
  /** Discriminant. */
  kind: "bind";
  /** Mount point (`mnt/<id>`). */
  target: string;
  /** The layer's own dir (`diff/<id>`). */
  source: string;
  /** Always read-only: read-write layers without parents need no mount. */
  readOnly: true;
  /** MS_NOSUID. */
  nosuid: boolean;
  /** MS_NODEV. */
  nodev: boolean;
}

/**
 * An overlayfs mount of a layer on its parents. A read-write layer's view has
 * the layer's dir as `upperdir`; a read-only layer's view has none: its dir
 * is the top lower dir, because overlayfs writes into an upper dir even on a
 * read-only mount (`*.overlay.origin` and `impure` on the merged directories
 * it looks up, `uuid` on the root), which would change an image layer that
 * must stay what it was applied as (its exact tar, its DiffID).
 */
export interface OverlayMountPlan {
  /** Discriminant. */
  kind: "overlay";
  /** Mount point (`mnt/<id>`). */
  target: string;
  /**
   * Absolute lower dirs, the top of the stack first: the layer's own dir and
   * then its parents for a read-only view, its parents for a read-write one.
   */
  lowerdirs: string[];
  /** The layer's own dir (`diff/<id>`); absent in a read-only view. */
  upperdir?: string;
  /** overlay's workdir (`work/<id>`), on the same filesystem as `upperdir`; absent with it. */
  workdir?: string;
  /** Mount read-only (MOUNT_ATTR_RDONLY): read-only layers get a read-only view. */
  readOnly: boolean;
  /** MOUNT_ATTR_NOSUID. */
  nosuid: boolean;
  /** MOUNT_ATTR_NODEV. */
  nodev: boolean;
  /** SELinux label, passed as `context="<label>"`. */
  mountLabel?: string;
  /** Pass `userxattr`: whiteout and opaque xattrs live in `user.overlay.*`. */
  userXattr?: boolean;
  /**
   * For the page-limited mount(2) fallback only: short paths of the same dirs,
   * relative to `cwd` (moby's `l/<short>` links), used when the absolute
   * option string would not fit in a page.
   */
  short?: {
    cwd: string;
    lowerdirs: string[];
    upperdir?: string;
    workdir?: string;
  };
}

/** One mount(2) call, as data. */
export interface MountCall {
  /** Source, e.g. "none". */
  source: string;
  /** Mount point. */
  target: string;
  /** Filesystem type, e.g. "aufs". */
  fstype: string;
  /** MS_* flags. */
  flags: number;
  /** The option string. */
  data: string;
}

/** An aufs mount: an exact sequence of mount(2) calls (Docker's aufs driver sequence). */
export interface AufsMountPlan {
  /** Discriminant. */
  kind: "aufs";
  /** Mount point (`mnt/<id>`). */
  target: string;
  /** Branch count: the rw branch plus every ro branch (for verification). */
  branches: number;
  /** The calls, in order: one mount, then MS_REMOUNT "append:" calls. */
  calls: MountCall[];
}

/**
 * What to do to show a layer's union view.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { MountPlan } from "./plan.ts";
 * const where = (p: MountPlan) => p.kind === "none" ? `use ${p.target}` : `mount ${p.kind} at ${p.target}`;
 * assert.equal(where({ kind: "none", target: "/s/diff/base" }), "use /s/diff/base");
 * ```
 */
export type MountPlan =
  | NoMountPlan
  | BindMountPlan
  | OverlayMountPlan
  | AufsMountPlan;
