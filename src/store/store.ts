/**
 * The layer store: ids, parent chains, the on-disk layout, locking,
 * persisted mount counts and crash recovery. It knows nothing of how a
 * backend mounts (it asks the backend for a plan and a {@link Mounter} to
 * perform it) nor of tar (it hands directories to `src/archive/layer.ts`).
 *
 * Crash-safety rules:
 * - A layer exists exactly when `layers/<id>` exists; that file is written
 *   last on create (temp + fsync + rename) and renamed away first on remove.
 * - Content is built in `staging/` and published with one rename; anything
 *   in `diff/`, `work/`, `mnt/`, `meta/` without a `layers/<id>`, anything
 *   named `*-removing`, and staging dirs whose builder died are swept on open.
 * - Every change to the store happens under the flock of `run/lock`.
 *
 * @module
 */

import {
  applyLayerTar,
  type Change,
  layerChanges,
  layerDiffSize,
  type LayerDirs,
  layerTar,
  type TarSource,
} from "../archive/layer.ts";
import { chooseBackend, probeHost } from "../backends/detect.ts";
import { backendByName } from "../backends/registry.ts";
import type { Backend, BackendName } from "../backends/types.ts";
import {
  BackendNotSupported,
  LayerExists,
  LayerfsError,
  LayerHasChildren,
  LayerInUse,
  LayerNotFound,
  ParentNotFound,
  StoreError,
} from "../errors.ts";
import {
  mountAt,
  type MountInfoEntry,
  readMountInfo,
} from "../mount/mountinfo.ts";
import { directMounter, type Mounter } from "../mount/mounter.ts";
import { helperMounter } from "../mount/helper_mounter.ts";
import type { MountPlan } from "../mount/plan.ts";
import { unmountTarget } from "../mount/perform.ts";
import { copyTree } from "../sys/copy_tree_linux.ts";
import { exchangePaths } from "../sys/exchange_linux.ts";
import { statfs } from "../sys/statfs_linux.ts";
import { syncDir } from "./_atomic.ts";
import { deferredByteStream } from "./_deferred_stream.ts";
import { FORMAT_VERSION, readConfig, writeConfig } from "./config.ts";
import { validateLayerId } from "./id.ts";
import { shortLinkName, StoreLayout } from "./layout.ts";
import { readMeta, readParents, writeMeta, writeParents } from "./meta.ts";
import {
  type MountCounts,
  readCounts,
  reconcileCounts,
  type ViewState,
  withStoreLock,
  writeCounts,
} from "./refcounts.ts";

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /** Store root directory; created if missing. */
  root: string;
  /**
   * Backend for a new store; an existing store keeps the one in layerfs.json
   * and refuses another explicit one.
   * @default {"auto"}
   */
  backend?: BackendName | "auto";
  /**
   * Who mounts. Unprivileged callers pass the helper's Mounter.
   * @default {directMounter} as root; the helper's Mounter when not root and
   * `helper` (or `LAYERFS_HELPER`) names a helper command
   */
  mounter?: Mounter;
  /**
   * Command line of the privileged helper, used when not root and no
   * `mounter` is given, e.g. `"sudo -n /usr/local/bin/layerfs-helper"`.
   * @default {the LAYERFS_HELPER environment variable, if set}
   */
  helper?: string;
}

/** Options of {@link Store.create} and {@link Store.createReadWrite}. */
export interface CreateOptions {
  /** SELinux label for the layer's mounted view (`context=`). */
  mountLabel?: string;
}

/** Options of {@link Store.get}. */
export interface GetOptions {
  /** SELinux label for the view; recorded in the layer's metadata so a helper re-plans the same. */
  mountLabel?: string;
}

/** Options of {@link Store.remove}. */
export interface RemoveOptions {
  /**
   * Remove even if mounted (it is unmounted) or a parent (its descendants are removed first).
   * @default {false}
   */
  force?: boolean;
}

/** One row of {@link Store.list}. */
export interface LayerInfo {
  /** The layer id. */
  id: string;
  /** Its direct parent, or undefined for a base layer. */
  parent: string | undefined;
  /** Created with createReadWrite. */
  readWrite: boolean;
  /** Outstanding `get`s (across all processes). */
  mounts: number;
}

interface BuildOptions<R> {
  readWrite: boolean;
  mountLabel?: string;
  fill?: (dirs: LayerDirs) => Promise<R>;
}

interface Staging {
  path: string;
  lock: Deno.FsFile;
}

/** The layer's own dirs (fast path), or two layers whose complete views are compared. */
type Comparison = { dirs: LayerDirs } | { views: [string, string] };

/** Dirs ready to read, and how to give back what was taken for them. */
interface Opened {
  dirs: LayerDirs;
  release: () => Promise<void>;
}

/**
 * A layer store. Get one with {@link openStore}.
 *
 * @example
 * ```ts ignore
 * import { openStore } from "./store.ts";
 * const store = await openStore({ root: "/var/lib/layerfs" });
 * await store.create("base");
 * await store.createReadWrite("ctr", "base");
 * const rootfs = await store.get("ctr");
 * await store.put("ctr");
 * store.close();
 * ```
 */
export class Store {
  /** The backend in use, fixed when the store was first initialised. */
  readonly backend: BackendName;
  /** Absolute, canonical store root. */
  readonly root: string;
  readonly #layout: StoreLayout;
  readonly #impl: Backend;
  readonly #mounter: Mounter;
  readonly #reason: string;
  readonly #userXattr: boolean;
  #closed = false;

  /** Use {@link openStore}. */
  constructor(
    layout: StoreLayout,
    backend: BackendName,
    mounter: Mounter,
    reason: string,
    userXattr = false,
  ) {
    this.#userXattr = userXattr;
    this.#layout = layout;
    this.root = layout.root;
    this.backend = backend;
    this.#impl = backendByName(backend);
    this.#mounter = mounter;
    this.#reason = reason;
  }

  /**
   * Creates an empty read-only (image) layer on `parent`.
   *
   * @throws {InvalidLayerId} {LayerExists} {ParentNotFound}
   *
   * @example
   * ```ts ignore
   * await store.create("base");
   * await store.create("app", "base");
   * ```
   */
  async create(
    id: string,
    parent?: string | null,
    options: CreateOptions = {},
  ): Promise<void> {
    await this.#build(id, parent, {
      readWrite: false,
      mountLabel: options.mountLabel,
    });
  }

  /**
   * Creates an empty read-write (container) layer on `parent`.
   *
   * @throws {InvalidLayerId} {LayerExists} {ParentNotFound}
   *
   * @example
   * ```ts ignore
   * await store.createReadWrite("ctr1", "app");
   * ```
   */
  async createReadWrite(
    id: string,
    parent?: string | null,
    options: CreateOptions = {},
  ): Promise<void> {
    await this.#build(id, parent, {
      readWrite: true,
      mountLabel: options.mountLabel,
    });
  }

  /**
   * Whether layer `id` exists.
   *
   * @throws {InvalidLayerId}
   *
   * @example
   * ```ts ignore
   * console.log(await store.exists("base"));
   * ```
   */
  async exists(id: string): Promise<boolean> {
    this.#open();
    validateLayerId(id);
    return (await readParents(this.#layout, id)) !== undefined;
  }

  /**
   * The parent chain of `id`, nearest first.
   *
   * @throws {InvalidLayerId} {LayerNotFound}
   *
   * @example
   * ```ts ignore
   * console.log(await store.parents("ctr1")); // ["app", "base"]
   * ```
   */
  async parents(id: string): Promise<string[]> {
    this.#open();
    return await this.#parentsOf(validateLayerId(id));
  }

  /**
   * Every layer with its parent, kind and mount count, sorted by id.
   *
   * @example
   * ```ts ignore
   * for (const l of await store.list()) console.log(l.id, l.parent, l.mounts);
   * ```
   */
  async list(): Promise<LayerInfo[]> {
    this.#open();
    const counts = await readCounts(this.#layout);
    const out: LayerInfo[] = [];
    for (const id of await this.#ids()) {
      const parents = await readParents(this.#layout, id);
      if (!parents) continue;
      const meta = await readMeta(this.#layout, id);
      out.push({
        id,
        parent: parents[0],
        readWrite: meta.readWrite,
        mounts: counts[id] ?? 0,
      });
    }
    return out;
  }

  /**
   * Returns the path of the layer's union view, mounting it on the first
   * `get` (in any process); later `get`s share the mount. A layer without
   * parents (and every vfs layer) is its own `diff/<id>` and mounts nothing.
   *
   * @throws {InvalidLayerId} {LayerNotFound} {MountError}
   *
   * @example
   * ```ts ignore
   * const rootfs = await store.get("ctr1");
   * ```
   */
  async get(id: string, options: GetOptions = {}): Promise<string> {
    this.#open();
    validateLayerId(id);
    return await this.#locked(async () => {
      const parents = await readParents(this.#layout, id);
      if (!parents) throw new LayerNotFound(id);
      if (options.mountLabel !== undefined) {
        const meta = await readMeta(this.#layout, id);
        if ((meta.mountLabel ?? "") !== options.mountLabel) {
          await writeMeta(this.#layout, id, {
            ...meta,
            mountLabel: options.mountLabel || undefined,
          });
        }
      }
      const { counts, info } = await this.#reconciled();
      const plan = await this.#plan(id, parents);
      if (plan.kind !== "none" && !mountAt(info, plan.target)) {
        await this.#mounter.mount(this.root, id, plan);
      }
      // A mount nobody counted (a process died between mount and count) is adopted here.
      counts[id] = (counts[id] ?? 0) + 1;
      await writeCounts(this.#layout, counts);
      return plan.target;
    });
  }

  /**
   * Releases one `get`; the last one (across processes) unmounts. A `put`
   * without a matching `get` unmounts a stray mount and is otherwise a no-op.
   *
   * @throws {InvalidLayerId} {LayerNotFound} {MountError}
   *
   * @example
   * ```ts ignore
   * await store.put("ctr1");
   * ```
   */
  async put(id: string): Promise<void> {
    this.#open();
    await this.#put(validateLayerId(id));
  }

  /** `put` without the closed check: views taken for a diff are released even after close(). */
  async #put(id: string): Promise<void> {
    await this.#locked(async () => {
      const parents = await readParents(this.#layout, id);
      if (!parents) throw new LayerNotFound(id);
      const { counts, info } = await this.#reconciled();
      const n = (counts[id] ?? 0) - 1;
      if (n > 0) counts[id] = n;
      else delete counts[id];
      const plan = await this.#plan(id, parents);
      if (n <= 0 && plan.kind !== "none" && mountAt(info, plan.target)) {
        await this.#mounter.unmount(this.root, id, plan.target);
      }
      await writeCounts(this.#layout, counts);
    });
  }

  /**
   * Removes a layer: refuses while it is mounted (by anyone) or is a parent,
   * unless `force` (then it is unmounted and its descendants removed first).
   * The layer disappears atomically (`layers/<id>` renamed to `-removing`),
   * then its dirs are renamed to `-removing` and deleted.
   *
   * @throws {InvalidLayerId} {LayerNotFound} {LayerHasChildren} {LayerInUse}
   *
   * @example
   * ```ts ignore
   * await store.remove("ctr1");
   * await store.remove("base", { force: true });
   * ```
   */
  async remove(id: string, options: RemoveOptions = {}): Promise<void> {
    this.#open();
    validateLayerId(id);
    await this.#locked(async () => {
      if (!(await readParents(this.#layout, id))) throw new LayerNotFound(id);
      const { counts, info } = await this.#reconciled();
      const order = await this.#removalOrder(id, !!options.force);
      // Something mounted inside a layer's own dirs (a volume bound into a
      // vfs rootfs) is not ours to unmount, and deleting through it would
      // delete the mounted files: refuse before anything changes.
      for (const victim of order) {
        for (
          const dir of [this.#layout.diff(victim), this.#layout.work(victim)]
        ) {
          const inside = info.find((m) => m.mountPoint.startsWith(`${dir}/`));
          if (inside) {
            throw new StoreError(
              `Cannot remove layer "${victim}": ${inside.mountPoint} is mounted inside it; ` +
                `unmount it (umount ${inside.mountPoint}) and retry`,
            );
          }
        }
      }
      for (const victim of order) {
        const mounted = !!mountAt(info, this.#layout.mnt(victim));
        const n = Math.max(counts[victim] ?? 0, mounted ? 1 : 0);
        if (n > 0 && !options.force) throw new LayerInUse(victim, n);
        if (mounted) {
          await this.#mounter.unmount(
            this.root,
            victim,
            this.#layout.mnt(victim),
          );
        }
        delete counts[victim];
        await this.#delete(victim);
      }
      await writeCounts(this.#layout, counts);
    });
  }

  /**
   * Status as key/value rows: backend, why it was chosen, root, backing
   * filesystem, layer and mount counts.
   *
   * @example
   * ```ts ignore
   * for (const [k, v] of await store.status()) console.log(`${k}: ${v}`);
   * ```
   */
  async status(): Promise<[string, string][]> {
    this.#open();
    const layers = await this.list();
    const mounted =
      (await readMountInfo()).filter((m) =>
        m.mountPoint.startsWith(this.#layout.mnt(""))
      ).length;
    const fs = statfs(this.root);
    return [
      ["backend", this.backend],
      ["backend reason", this.#reason],
      ["root", this.root],
      ["backing filesystem", fs.name],
      ["whiteout format", this.#impl.whiteoutFormat],
      ...(this.backend === "overlay"
        ? [[
          "overlay xattrs",
          this.#userXattr ? "user.overlay.* (userxattr)" : "trusted.overlay.*",
        ] as [string, string]]
        : []),
      ["layers", String(layers.length)],
      ["mounted views", String(mounted)],
      ["outstanding gets", String(layers.reduce((n, l) => n + l.mounts, 0))],
      ["format version", String(FORMAT_VERSION)],
      [
        "mount api",
        this.backend === "overlay"
          ? "fsopen/fsconfig lowerdir+ (mount(2) fallback)"
          : this.backend === "aufs"
          ? "mount(2) with MS_REMOUNT append"
          : "none (full copies)",
      ],
    ];
  }

  /**
   * The dirs of a layer, as strings: `diff`, `mnt` (when it mounts), `work`
   * (overlay), `lowerdirs` (parents' diff dirs joined by ":"), `parents`,
   * `readWrite`, `mountLabel`.
   *
   * @throws {InvalidLayerId} {LayerNotFound}
   *
   * @example
   * ```ts ignore
   * console.log((await store.metadata("ctr1")).diff);
   * ```
   */
  async metadata(id: string): Promise<Record<string, string>> {
    this.#open();
    const parents = await this.#parentsOf(validateLayerId(id));
    const meta = await readMeta(this.#layout, id);
    const out: Record<string, string> = {
      backend: this.backend,
      diff: this.#layout.diff(id),
      parents: parents.join(","),
      readWrite: String(meta.readWrite),
    };
    if (this.backend !== "vfs" && parents.length > 0) {
      out.mnt = this.#layout.mnt(id);
      out.lowerdirs = parents.map((p) => this.#layout.diff(p)).join(":");
    }
    if (this.#impl.needsWorkDir) out.work = this.#layout.work(id);
    if (meta.mountLabel) out.mountLabel = meta.mountLabel;
    return out;
  }

  /**
   * Unmounts every view under this store's `mnt/` and forgets all counts
   * (what a daemon does on shutdown; also removes mounts nobody counted).
   *
   * @example
   * ```ts ignore
   * await store.cleanup();
   * ```
   */
  async cleanup(): Promise<void> {
    this.#open();
    await this.#locked(async () => {
      const prefix = this.#layout.mnt("");
      const targets = (await readMountInfo()).map((m) => m.mountPoint)
        .filter((t) =>
          t.startsWith(prefix) && !t.slice(prefix.length).includes("/")
        );
      for (const t of [...new Set(targets)]) {
        await this.#mounter.unmount(this.root, t.slice(prefix.length), t);
      }
      await writeCounts(this.#layout, {});
    });
  }

  /**
   * Closes the store object (it holds no open files between calls; later
   * calls throw).
   *
   * @example
   * ```ts ignore
   * store.close();
   * ```
   */
  close(): void {
    this.#closed = true;
  }

  /**
   * The layer's changes against `parent` as an uncompressed OCI layer tar.
   * Without `parent`, or with its direct parent, that is the layer's own
   * dir. Any other layer (an ancestor, a descendant, an unrelated layer) is
   * compared the way moby's NaiveDiffDriver does: both complete views (on
   * overlay/aufs mounted with `get` on the first read, released with `put`
   * when the stream ends, errors or is cancelled) are compared entry by
   * entry and what differs is exported, deletions as `.wh.<name>`.
   *
   * The result is a byte stream. To save it, use `writeToFile` (GNU tar's
   * speed: reused buffers, writes overlapped with the export); `pipeTo`
   * works too, at about half that speed (a fresh 1 MiB chunk per read).
   *
   * @throws {InvalidLayerId} {LayerNotFound} (for `id` or `parent`) {MountError}
   *   (through the stream)
   *
   * @example
   * ```ts ignore
   * import { writeToFile } from "@layerfs/layerfs";
   * using out = await Deno.create("app.tar");
   * await writeToFile(store.diff("app"), out);
   * using squashed = await Deno.create("app-squashed.tar");
   * await writeToFile(store.diff("app", "base"), squashed); // app's view against base's
   * ```
   */
  diff(id: string, parent?: string | null): ReadableStream<Uint8Array> {
    this.#open();
    validateLayerId(id);
    const cmp = this.#comparison(id, parent);
    cmp.catch(() => {}); // reported through the stream
    // Views are taken on the first read, so a stream never read mounts nothing.
    return deferredByteStream(async () => {
      const { dirs, release } = await this.#openComparison(await cmp);
      return { stream: layerTar(dirs), release };
    });
  }

  /**
   * Applies an OCI layer tar. A new layer is built entirely in staging and
   * published with one rename; an existing (unmounted) layer with that parent
   * gets the tar applied on a copy of its content, swapped in atomically.
   * On any error nothing changes. Returns what the archive code returns (the
   * applied size in bytes).
   *
   * @throws {InvalidLayerId} {ParentNotFound} {LayerInUse} {InvalidArchive}
   *
   * @example
   * ```ts ignore
   * const tar = (await Deno.open("base.tar")).readable;
   * await store.applyDiff("base", undefined, tar);
   * ```
   */
  async applyDiff(
    id: string,
    parent: string | null | undefined,
    tar: TarSource,
  ): Promise<number> {
    this.#open();
    validateLayerId(id);
    parent = noParent(parent);
    if (parent !== undefined) validateLayerId(parent);
    const fill = (dirs: LayerDirs) => applyLayerTar(dirs, tar);
    if (!(await readParents(this.#layout, id))) {
      try {
        return (await this.#build(id, parent, { readWrite: false, fill }))!;
      } catch (e) {
        if (!(e instanceof LayerExists)) throw e;
        // Lost a race with a concurrent create: apply onto it below.
      }
    }
    return await this.#reapply(id, parent, fill);
  }

  /**
   * Bytes of regular files that `diff` would carry, hard links counted once.
   * Without `parent` or with the direct parent: the files of the layer's own
   * content. Any other layer: the added and modified regular files of the
   * layer's view compared with `parent`'s (moby's NaiveDiffDriver; views are
   * mounted for the call and released before it returns).
   *
   * @throws {InvalidLayerId} {LayerNotFound} (for `id` or `parent`) {MountError}
   *
   * @example
   * ```ts ignore
   * console.log(await store.diffSize("app"));
   * console.log(await store.diffSize("app", "base"));
   * ```
   */
  async diffSize(id: string, parent?: string | null): Promise<number> {
    this.#open();
    return await this.#compared(validateLayerId(id), parent, layerDiffSize);
  }

  /**
   * The layer's changes against `parent` (default: its parents), sorted by
   * path. Any layer may be `parent`, not only the direct one: then both
   * complete views are compared entry by entry, as moby's `ChangesDirs`
   * (views are mounted for the call and released before it returns).
   *
   * @throws {InvalidLayerId} {LayerNotFound} (for `id` or `parent`) {MountError}
   *
   * @example
   * ```ts ignore
   * for (const c of await store.changes("ctr1")) console.log(c.kind, c.path);
   * for (const c of await store.changes("ctr1", "base")) console.log(c.kind, c.path);
   * ```
   */
  async changes(id: string, parent?: string | null): Promise<Change[]> {
    this.#open();
    return await this.#compared(validateLayerId(id), parent, layerChanges);
  }

  /**
   * Crash recovery, run by {@link openStore}: under the store lock, sweeps
   * leftovers of crashed operations and reconciles mount counts with
   * mountinfo. Safe to call again at any time.
   *
   * @example
   * ```ts ignore
   * await store.recover();
   * ```
   */
  async recover(): Promise<void> {
    this.#open();
    await this.#locked(async () => {
      await sweep(this.#layout);
      await this.#reconciled();
    });
  }

  // ---- internals ----

  #open(): void {
    if (this.#closed) {
      throw new StoreError(
        `The store at ${this.root} is closed; open it again`,
      );
    }
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    return withStoreLock(this.#layout, fn);
  }

  async #parentsOf(id: string): Promise<string[]> {
    const p = await readParents(this.#layout, id);
    if (!p) throw new LayerNotFound(id);
    return p;
  }

  async #ids(): Promise<string[]> {
    const ids: string[] = [];
    for await (const e of Deno.readDir(this.#layout.layers())) {
      if (!e.isFile) continue;
      try {
        ids.push(validateLayerId(e.name));
      } catch { /* -removing leftovers, temp files */ }
    }
    return ids.sort();
  }

  async #plan(id: string, parents: string[]): Promise<MountPlan> {
    const meta = await readMeta(this.#layout, id);
    return this.#impl.planMount({
      root: this.root,
      id,
      parents,
      readWrite: meta.readWrite,
      mountLabel: meta.mountLabel,
      userXattr: this.#userXattr,
    });
  }

  /**
   * What diff/changes/diffSize compare, checked without mounting anything:
   * the layer's own dirs when `parent` is omitted or its direct parent (the
   * fast path), else the two layers whose complete views are compared.
   */
  async #comparison(
    id: string,
    parent: string | null | undefined,
  ): Promise<Comparison> {
    parent = noParent(parent);
    const parents = await this.#parentsOf(id);
    if (parent === undefined || parent === parents[0]) {
      return {
        dirs: {
          dir: this.#layout.diff(id),
          format: this.#impl.whiteoutFormat,
          parentDirs: parents.map((p) => this.#layout.diff(p)),
          userXattr: this.#userXattr,
        },
      };
    }
    await this.#parentsOf(validateLayerId(parent));
    return { views: [id, parent] };
  }

  /**
   * Makes a comparison's dirs available. Two views (moby's NaiveDiffDriver)
   * are taken with `get` (mounted on overlay/aufs; vfs dirs are complete
   * trees already) and so counted: neither layer can be removed or
   * re-applied meanwhile. `release` puts them. Two complete trees are what
   * the archive code compares for vfs, so the dirs carry format "vfs".
   */
  async #openComparison(cmp: Comparison): Promise<Opened> {
    if ("dirs" in cmp) return { dirs: cmp.dirs, release: async () => {} };
    const [id, parent] = cmp.views;
    const dirs = (dir: string, parentDir: string): LayerDirs => ({
      dir,
      format: "vfs",
      parentDirs: [parentDir],
      userXattr: this.#userXattr,
    });
    // On vfs, get mounts nothing (the view is diff/<id>) but still counts.
    const view = await this.get(id);
    let parentView: string;
    try {
      parentView = await this.get(parent);
    } catch (e) {
      await this.#putView(id);
      throw e;
    }
    let released = false;
    return {
      dirs: dirs(view, parentView),
      release: async () => {
        if (released) return;
        released = true;
        try {
          await this.#putView(id);
        } finally {
          await this.#putView(parent);
        }
      },
    };
  }

  /** Runs `use` on what compares `id` with `parent`; views it took are put afterwards. */
  async #compared<T>(
    id: string,
    parent: string | null | undefined,
    use: (dirs: LayerDirs) => Promise<T>,
  ): Promise<T> {
    const { dirs, release } = await this.#openComparison(
      await this.#comparison(id, parent),
    );
    try {
      return await use(dirs);
    } finally {
      await release();
    }
  }

  /** Puts a view taken by #openComparison; a layer force-removed meanwhile has no view left. */
  async #putView(id: string): Promise<void> {
    try {
      await this.#put(id);
    } catch (e) {
      if (!(e instanceof LayerNotFound)) throw e;
    }
  }

  /** Counts reconciled with mountinfo (caller holds the lock); persisted if changed. */
  async #reconciled(): Promise<
    { counts: MountCounts; info: MountInfoEntry[] }
  > {
    const info = await readMountInfo();
    const raw = await readCounts(this.#layout);
    const states = new Map<string, ViewState>();
    for (const id of Object.keys(raw)) {
      let parents: string[] | undefined;
      try {
        parents = await readParents(this.#layout, validateLayerId(id));
      } catch {
        parents = undefined;
      }
      if (!parents) states.set(id, "gone");
      else if (this.backend === "vfs" || parents.length === 0) {
        states.set(id, "no-mount");
      } else {states.set(
          id,
          mountAt(info, this.#layout.mnt(id)) ? "mounted" : "unmounted",
        );}
    }
    const { counts, dropped } = reconcileCounts(raw, (id) => states.get(id)!);
    if (dropped.length) await writeCounts(this.#layout, counts);
    return { counts, info };
  }

  async #children(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const id of await this.#ids()) {
      const p = (await readParents(this.#layout, id))?.[0];
      if (p === undefined) continue;
      const list = out.get(p) ?? [];
      list.push(id);
      out.set(p, list);
    }
    return out;
  }

  /** `id` and, with force, its descendants, deepest first. */
  async #removalOrder(id: string, force: boolean): Promise<string[]> {
    const children = await this.#children();
    const direct = children.get(id) ?? [];
    if (direct.length && !force) throw new LayerHasChildren(id, direct);
    const order: string[] = [];
    const visit = (x: string) => {
      for (const c of children.get(x) ?? []) visit(c);
      order.push(x);
    };
    visit(id);
    return order;
  }

  /** Deletes a layer (caller holds the lock and has unmounted it). */
  async #delete(id: string): Promise<void> {
    const l = this.#layout;
    // The layer stops existing here, atomically.
    await Deno.rename(l.layers(id), l.layers(`${id}-removing`));
    await syncDir(l.layers());
    await this.#purge(id);
    await Deno.remove(l.layers(`${id}-removing`));
  }

  /**
   * Removes every trace of a layer that has no `layers/<id>`: renames each
   * dir to `-removing`, then deletes. `mnt/<id>` is only ever rmdir'ed, after
   * unmounting: a recursive delete there would walk into a live union view
   * and delete the parents' files.
   */
  async #purge(id: string): Promise<void> {
    const l = this.#layout;
    const mnt = l.mnt(id);
    if (mountAt(await readMountInfo(), mnt)) unmountTarget(mnt);
    await rmdirIfPresent(mnt);
    await removeIfPresent(l.link(shortLinkName(id)), false);
    for (const p of [l.diff(id), l.work(id), l.meta(id)]) {
      try {
        await Deno.rename(p, `${p}-removing`);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue;
        throw e;
      }
      await removeIfPresent(`${p}-removing`, true);
    }
  }

  /** Creates a staging entry holding a live flock (caller holds the store lock). */
  async #newStaging(id: string): Promise<Staging> {
    const path = this.#layout.staging(
      `${id}.${crypto.randomUUID().slice(0, 8)}`,
    );
    await Deno.mkdir(path, { mode: 0o700 });
    const lock = await Deno.open(`${path}/lock`, {
      read: true,
      write: true,
      create: true,
    });
    await lock.lock(true);
    return { path, lock };
  }

  async #dropStaging(s: Staging): Promise<void> {
    s.lock.close();
    await removeIfPresent(s.path, true);
  }

  async #build<R>(
    id: string,
    parent: string | null | undefined,
    opts: BuildOptions<R>,
  ): Promise<R | undefined> {
    this.#open();
    validateLayerId(id);
    parent = noParent(parent);
    if (parent !== undefined) validateLayerId(parent);
    const l = this.#layout;
    let parents: string[] = [];
    const staging = await this.#locked(async () => {
      if (await readParents(l, id)) throw new LayerExists(id);
      if (parent !== undefined) {
        const pp = await readParents(l, parent);
        if (!pp) throw new ParentNotFound(id, parent);
        parents = [parent, ...pp];
      }
      return await this.#newStaging(id);
    });
    try {
      const diff = `${staging.path}/diff`;
      await Deno.mkdir(diff);
      await Deno.chmod(diff, 0o755); // exactly 0755 whatever the umask
      if (this.#impl.copiesParent && parent !== undefined) {
        copyLayer(l.diff(parent), diff, parent);
      }
      const result = opts.fill
        ? await opts.fill({
          dir: diff,
          format: this.#impl.whiteoutFormat,
          parentDirs: parents.map((p) => l.diff(p)),
          userXattr: this.#userXattr,
        })
        : undefined;
      await this.#locked(async () => {
        if (await readParents(l, id)) throw new LayerExists(id);
        if (parent !== undefined && !(await readParents(l, parent))) {
          throw new ParentNotFound(id, parent);
        }
        await this.#purge(id); // leftovers of a crashed earlier attempt
        await Deno.rename(diff, l.diff(id));
        if (this.#impl.needsWorkDir) {
          await Deno.mkdir(l.work(id), { mode: 0o700 });
        }
        if (parents.length && this.backend !== "vfs") {
          await Deno.mkdir(l.mnt(id), { mode: 0o700 });
        }
        if (this.backend === "overlay") {
          await Deno.symlink(`../diff/${id}`, l.link(shortLinkName(id)));
        }
        await syncDir(`${this.root}/diff`);
        await writeMeta(l, id, {
          readWrite: opts.readWrite,
          mountLabel: opts.mountLabel || undefined,
        });
        await writeParents(l, id, parents); // commit point
      });
      return result;
    } finally {
      await this.#dropStaging(staging);
    }
  }

  async #reapply<R>(
    id: string,
    parent: string | undefined,
    fill: (dirs: LayerDirs) => Promise<R>,
  ): Promise<R> {
    const l = this.#layout;
    const check = async () => {
      const parents = await readParents(l, id);
      if (!parents) throw new LayerNotFound(id);
      if (parents[0] !== parent) {
        throw new LayerfsError(
          `Cannot apply a diff to layer "${id}" on parent ${
            JSON.stringify(parent ?? null)
          }: ` +
            `it exists with parent ${JSON.stringify(parents[0] ?? null)}; ` +
            "use a new id or remove the layer first",
        );
      }
      const { counts, info } = await this.#reconciled();
      const n = Math.max(counts[id] ?? 0, mountAt(info, l.mnt(id)) ? 1 : 0);
      if (n > 0) throw new LayerInUse(id, n);
      return parents;
    };
    let parents: string[] = [];
    const staging = await this.#locked(async () => {
      parents = await check();
      return await this.#newStaging(id);
    });
    try {
      const diff = `${staging.path}/diff`;
      await Deno.mkdir(diff);
      copyLayer(l.diff(id), diff, id); // apply on top of what the layer holds
      const result = await fill({
        dir: diff,
        format: this.#impl.whiteoutFormat,
        parentDirs: parents.map((p) => l.diff(p)),
      });
      await this.#locked(async () => {
        await check();
        exchangePaths(diff, l.diff(id));
        await syncDir(`${this.root}/diff`);
      });
      return result;
    } finally {
      await this.#dropStaging(staging);
    }
  }
}

/** copyTree with its SysError turned into an actionable StoreError. */
function copyLayer(src: string, dst: string, id: string): void {
  try {
    copyTree(src, dst);
  } catch (e) {
    throw new StoreError(
      `Copying layer "${id}" failed (${(e as Error).message}); ` +
        "check free space and that the layer was not removed meanwhile",
      { cause: e },
    );
  }
}

async function removeIfPresent(
  path: string,
  recursive: boolean,
): Promise<void> {
  if (recursive) {
    // A recursive delete descends into mount points below the path (a vfs
    // layer used as a rootfs may have /proc or a host volume bound inside)
    // and would delete the mounted files; refuse instead.
    const inside = (await readMountInfo()).find((m) =>
      m.mountPoint === path || m.mountPoint.startsWith(`${path}/`)
    );
    if (inside) {
      throw new StoreError(
        `Refusing to delete ${path}: ${inside.mountPoint} is mounted inside it; ` +
          `unmount it (umount ${inside.mountPoint}) and retry`,
      );
    }
  }
  try {
    await Deno.remove(path, { recursive });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * The sweep on open removes leftovers but leaves one with a mount inside it
 * (removeIfPresent refuses those) for `layerfs check` to report, so that one
 * stray mount never makes the whole store unopenable.
 */
async function sweepRemove(path: string): Promise<void> {
  try {
    await removeIfPresent(path, true);
  } catch (e) {
    if (!(e instanceof StoreError)) throw e;
  }
}

async function rmdirIfPresent(path: string): Promise<void> {
  await removeIfPresent(path, false);
}

/**
 * Opens (and on first use initialises) a layer store at `root`. Opening takes
 * the store lock, sweeps leftovers of crashed operations (staging dirs whose
 * builder died, `*-removing` entries, dirs of layers that were never
 * committed) and reconciles mount counts with mountinfo.
 *
 * @throws {BackendNotSupported} when the requested backend cannot run here or
 *   differs from the one the store was initialised with.
 * @throws {IncompatibleBackingFs} when the backing filesystem cannot host it.
 * @throws {StoreError} when layerfs.json is corrupt.
 *
 * @example
 * ```ts ignore
 * import { openStore } from "./store.ts";
 * const store = await openStore({ root: "/var/lib/layerfs", backend: "auto" });
 * console.log(store.backend);
 * ```
 */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const requested = options.backend ?? "auto";
  await Deno.mkdir(options.root, { recursive: true, mode: 0o700 });
  const layout = new StoreLayout(await Deno.realPath(options.root));
  for (
    const d of ["layers", "diff", "mnt", "work", "meta", "l", "run", "staging"]
  ) {
    await Deno.mkdir(`${layout.root}/${d}`, { recursive: true, mode: 0o700 });
  }
  const mounter = options.mounter ?? defaultMounter(options.helper);
  const canMount = Deno.uid() === 0 || mounter !== undefined;
  const { backend, reason, userXattr } = await withStoreLock(
    layout,
    async () => {
      const config = await readConfig(layout);
      if (config) {
        if (requested !== "auto" && requested !== config.backend) {
          throw new BackendNotSupported(
            requested,
            `the store at ${layout.root} was initialised with "${config.backend}" ` +
              `(whiteout formats differ); open it with backend "${config.backend}" or "auto"`,
          );
        }
        return {
          backend: config.backend,
          userXattr: config.userXattr === true,
          reason: `recorded in layerfs.json${
            config.reason ? ` (${config.reason})` : ""
          }`,
        };
      }
      const choice = chooseBackend(
        requested,
        await probeHost(layout.root, canMount),
        layout.root,
      );
      // A store made by a user who is not root cannot hold trusted.* xattrs, so
      // its overlay whiteout state lives in user.overlay.* for good.
      const userXattr = choice.backend === "overlay" && Deno.uid() !== 0;
      await writeConfig(layout, {
        version: FORMAT_VERSION,
        backend: choice.backend,
        reason: choice.reason,
        ...(userXattr ? { userXattr } : {}),
      });
      return { ...choice, userXattr };
    },
  );
  const store = new Store(
    layout,
    backend,
    mounter ?? directMounter,
    reason,
    userXattr,
  );
  await store.recover();
  return store;
}

/** `undefined`, `null` and `""` all mean "no parent" (moby passes ""). */
function noParent(parent: string | null | undefined): string | undefined {
  return parent === null || parent === "" ? undefined : parent;
}

/**
 * Root mounts in-process; anyone else mounts through the privileged helper
 * when one is named (option or LAYERFS_HELPER), else cannot mount at all.
 */
function defaultMounter(helper: string | undefined): Mounter | undefined {
  if (Deno.uid() === 0) return undefined;
  let command = helper;
  if (command === undefined) {
    try {
      command = Deno.env.get("LAYERFS_HELPER");
    } catch { /* no --allow-env: no helper */ }
  }
  return command ? helperMounter(command) : undefined;
}

/** Crash recovery on open (caller holds the store lock). */
async function sweep(layout: StoreLayout): Promise<void> {
  // Staging dirs whose builder is gone (its flock is free) or never locked.
  for await (const e of Deno.readDir(layout.staging())) {
    const p = layout.staging(e.name);
    let f: Deno.FsFile | undefined;
    try {
      f = await Deno.open(`${p}/lock`, { read: true, write: true });
    } catch { /* no lock file: a crash right after mkdir */ }
    const free = f ? await f.tryLock(true) : true;
    f?.close();
    if (free) await sweepRemove(p);
  }
  const live = new Set<string>();
  for await (const e of Deno.readDir(layout.layers())) {
    if (e.name.endsWith("-removing")) continue;
    live.add(e.name);
  }
  for await (const e of Deno.readDir(layout.layers())) {
    if (e.name.endsWith("-removing") || e.name.includes(".tmp-")) {
      await removeIfPresent(layout.layers(e.name), false);
    }
  }
  const info = await readMountInfo();
  for (const dir of ["mnt", "diff", "work", "meta"]) {
    for await (const e of Deno.readDir(`${layout.root}/${dir}`)) {
      const name = e.name;
      if (live.has(name)) continue;
      const p = `${layout.root}/${dir}/${name}`;
      if (dir === "mnt") {
        if (mountAt(info, p)) unmountTarget(p);
        await rmdirIfPresent(p);
      } else {
        await sweepRemove(p);
      }
    }
  }
  const links = new Set([...live].map(shortLinkName));
  for await (const e of Deno.readDir(layout.link())) {
    if (!links.has(e.name)) await removeIfPresent(layout.link(e.name), false);
  }
}
