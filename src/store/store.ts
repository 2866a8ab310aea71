/**
 * The layer store's public API: a façade over one module per concept —
 * building and committing (`_build.ts`), views and mount counts
 * (`_views.ts`), removal (`_remove.ts`), comparisons for diff/changes
 * (`_compare.ts`), crash recovery (`recovery.ts`) and opening (`open.ts`).
 * It knows no backend by name (it asks its backend) and no tar format (it
 * hands directories to `src/archive/`).
 *
 * Rules every part keeps:
 * - A layer exists exactly when `layers/<id>` exists; that file is written
 *   last on create (temp + fsync + rename) and renamed away first on remove.
 * - A layer is filled once, in `staging/`, and published with one rename;
 *   nothing ever merges into an existing layer.
 * - Parents are immutable: read-only layers get read-only views, a
 *   read-write layer cannot be a parent (commit it first), and a parent
 *   cannot be removed without `force`.
 * - Every change to the store happens under the flock of `run/lock`.
 *
 * @module
 */

import type { Change, TarSource } from "../archive/layer.ts";
import type { LayerDirs } from "../archive/types.ts";
import type { BackendName } from "../backends/registry.ts";
import {
  InvalidLayerId,
  LayerDamaged,
  LayerfsError,
  LayerNotFound,
  StoreError,
} from "../errors.ts";
import { mountAt, readMountInfo } from "../mount/mountinfo.ts";
import { statfs } from "../sys/statfs_linux.ts";
import { buildLayer, commitLayer } from "./_build.ts";
import type { StagedLayer } from "./_chain.ts";
import { noParent, type StoreContext } from "./_context.ts";
import { compared, comparison, openComparison } from "./_compare.ts";
import { deferredByteStream } from "./_deferred_stream.ts";
import { removeIfPresent, rmdirIfPresent } from "./_fs.ts";
import { entryNames } from "../_fs.ts";
import { removeLayer } from "./_remove.ts";
import { diskUsage } from "./_usage.ts";
import { getView, putView, unmountAll, unmountUncounted } from "./_views.ts";
import { FORMAT_VERSION } from "./config.ts";
import { chainDamage, listedLayer } from "./damage.ts";
import { validateLayerId } from "./id.ts";
import { isLayer, readMeta } from "./meta.ts";
import { readCounts } from "./refcounts.ts";
import { findLeftovers, finishCommits, removeLockFile } from "./recovery.ts";
import { loadModule } from "../_load_module.ts";

// Extraction with tar-split, export, change lists and image-layer checks
// (~0.4 MB of emitted code) load on the first call that needs them, not
// with the store, and each only with its own call: a process that lists,
// mounts or removes layers, or imports mod.ts only for applyTar, does not
// load them at start-up, and `changes` does not load the tar code (README
// "Start-up"). Every caller is async already.
const exporter = () =>
  loadModule<typeof import("../archive/export/layer_tar.ts")>(
    new URL("../archive/export/layer_tar.ts", import.meta.url),
  );
const tarSplit = () =>
  loadModule<typeof import("../archive/tarsplit/mod.ts")>(
    new URL("../archive/tarsplit/mod.ts", import.meta.url),
  );
const sizer = () =>
  loadModule<typeof import("../archive/changes/layer_size.ts")>(
    new URL("../archive/changes/layer_size.ts", import.meta.url),
  );
const changeLister = () =>
  loadModule<typeof import("../archive/changes/layer_changes.ts")>(
    new URL("../archive/changes/layer_changes.ts", import.meta.url),
  );
const chain = () =>
  loadModule<typeof import("./_chain.ts")>(
    new URL("./_chain.ts", import.meta.url),
  );

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
   * Remove even if mounted (it is unmounted) or a parent (its descendants
   * are removed first; a descendant that is mounted is refused with
   * `LayerInUse` naming it, and then nothing is removed).
   * @default {false}
   */
  force?: boolean;
}

/** One row of {@link Store.list}. */
export interface LayerInfo {
  /** The layer id. */
  id: string;
  /** Its direct parent, or undefined for a base layer (or when `layers/<id>` cannot be read). */
  parent: string | undefined;
  /** Created with createReadWrite; false when `meta/<id>` cannot be read (see `damaged`). */
  readWrite: boolean;
  /** Outstanding `get`s (across all processes). */
  mounts: number;
  /**
   * True when an image load or pull made it (`applyDiffStaged` with
   * `imageLayer`): only such layers are ever unused image layers that
   * `pruneImages` removes. Absent otherwise.
   */
  imageLayer?: true;
  /**
   * Set when the layer is damaged: why, naming the file (`meta/app is not
   * a valid JSON object`, `diff/app is missing ...`, `layers/app names
   * parent "x", which is not a layer`). Its view cannot be made; `layerfs
   * check` says what can be repaired, `remove(id, { force: true })` removes
   * it. Absent on a healthy layer.
   */
  damaged?: string;
}

/** Disk usage, as containerd's `Usage`: bytes allocated and inodes. */
export interface Usage {
  /** Bytes allocated on disk (st_blocks * 512), each hard-linked inode once. */
  size: number;
  /** Inodes: files, dirs, links, devices, whiteouts. */
  inodes: number;
}

/** What {@link Store.usage} returns. */
export interface LayerUsage {
  /** The layer's own dir (`diff/<id>`). */
  layer: Usage;
  /** The layer and every parent: what its chain takes on disk. */
  chain: Usage;
}

/**
 * A layer store. Get one with {@link openStore}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore } from "./open.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await store.create("base");
 * await store.createReadWrite("ctr", "base");
 * const rootfs = await store.get("ctr");
 * await Deno.writeTextFile(`${rootfs}/hello`, "hi\n");
 * assert.deepEqual(await store.changes("ctr"), [{ path: "/hello", kind: "add" }]);
 * await store.put("ctr");
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export class Store {
  /** The backend in use, fixed when the store was first initialised. */
  readonly backend: BackendName;
  /** Absolute, canonical store root. */
  readonly root: string;
  readonly #ctx: StoreContext;
  readonly #reason: string;
  #closed = false;

  /** Use {@link openStore}. */
  constructor(ctx: StoreContext, reason: string) {
    this.#ctx = ctx;
    this.root = ctx.root;
    this.backend = ctx.backend.name;
    this.#reason = reason;
  }

  /**
   * Creates an empty read-only (image) layer on `parent` (a read-only layer).
   *
   * @throws {InvalidLayerId} {LayerExists} {ParentNotFound} {ParentNotCommitted}
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * import { LayerExists, ParentNotFound } from "../errors.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * await store.create("app", "base");
   * assert.deepEqual(await store.parents("app"), ["base"]);
   * await assert.rejects(store.create("app", "base"), LayerExists);
   * await assert.rejects(store.create("web", "nope"), ParentNotFound);
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async create(
    id: string,
    parent?: string | null,
    options: CreateOptions = {},
  ): Promise<void> {
    await this.#build(id, parent, false, options.mountLabel);
  }

  /**
   * Creates an empty read-write (container) layer on `parent` (a read-only
   * layer). Write to it through its view ({@link get}); {@link commit} turns
   * it into an image layer.
   *
   * @throws {InvalidLayerId} {LayerExists} {ParentNotFound} {ParentNotCommitted}
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * import { ParentNotCommitted } from "../errors.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("app");
   * await store.createReadWrite("ctr1", "app");
   * assert.equal((await store.list()).find((l) => l.id === "ctr1")?.readWrite, true);
   * await assert.rejects(store.create("x", "ctr1"), ParentNotCommitted); // commit it first
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async createReadWrite(
    id: string,
    parent?: string | null,
    options: CreateOptions = {},
  ): Promise<void> {
    await this.#build(id, parent, true, options.mountLabel);
  }

  /**
   * Turns read-write layer `id` into a new read-only layer `newId` with the
   * same parents and content, in O(1) (renames, no copy); `id` is gone
   * afterwards. Refused while `id` is mounted. The new layer can be a parent.
   *
   * @throws {InvalidLayerId} {LayerNotFound} {LayerExists} {LayerNotWritable} {LayerInUse}
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * await store.createReadWrite("ctr", "base");
   * await Deno.writeTextFile(`${await store.get("ctr")}/hello`, "hi\n");
   * await store.put("ctr");
   * await store.commit("ctr", "app");
   * assert.equal(await store.exists("ctr"), false);
   * await store.createReadWrite("ctr2", "app");
   * assert.equal(await Deno.readTextFile(`${await store.get("ctr2")}/hello`), "hi\n");
   * await store.put("ctr2");
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async commit(id: string, newId: string): Promise<void> {
    this.#open();
    await commitLayer(this.#ctx, validateLayerId(id), validateLayerId(newId));
  }

  /**
   * Whether layer `id` exists.
   *
   * @throws {InvalidLayerId}
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * assert.equal(await store.exists("base"), true);
   * assert.equal(await store.exists("app"), false);
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async exists(id: string): Promise<boolean> {
    this.#open();
    validateLayerId(id);
    return await isLayer(this.#ctx.layout, id); // a damaged layer exists too
  }

  /**
   * The parent chain of `id`, nearest first.
   *
   * @throws {InvalidLayerId} {LayerNotFound}
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * await store.create("app", "base");
   * await store.createReadWrite("ctr1", "app");
   * assert.deepEqual(await store.parents("ctr1"), ["app", "base"]);
   * assert.deepEqual(await store.parents("base"), []);
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async parents(id: string): Promise<string[]> {
    this.#open();
    return await this.#ctx.parentsOf(validateLayerId(id));
  }

  /**
   * Every layer with its parent, kind and mount count, sorted by id. A
   * damaged layer (unreadable records, a parent that is not a layer, its
   * content dir gone) is listed with `damaged` saying why, never dropped and
   * never failing the list; a missing dir the backend keeps beside the
   * content (overlay's `work/<id>`) is left to `layerfs check`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * await store.createReadWrite("ctr1", "base");
   * await store.get("ctr1");
   * assert.deepEqual(await store.list(), [
   *   { id: "base", parent: undefined, readWrite: false, mounts: 0 },
   *   { id: "ctr1", parent: "base", readWrite: true, mounts: 1 },
   * ]);
   * await store.put("ctr1");
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async list(): Promise<LayerInfo[]> {
    this.#open();
    const l = this.#ctx.layout;
    // Under the lock: counts are rewritten in place, and a list must not
    // see a layer half-created or a count half-written.
    return await this.#ctx.locked(async () => {
      const counts = await readCounts(l);
      const ids = await this.#ctx.ids();
      const live = new Set(ids);
      // One readdir for the whole list, not a stat per layer.
      const contents = new Set(await entryNames(`${l.root}/diff`));
      const out: LayerInfo[] = [];
      for (const id of ids) {
        const row = await listedLayer(l, id, live, contents);
        if (row) out.push({ ...row, mounts: counts[id] ?? 0 });
      }
      return out;
    });
  }

  /**
   * Returns the path of the layer's view, mounting it on the first `get` (in
   * any process); later `get`s share the mount. A read-only layer's view is
   * read-only (on vfs, which mounts nothing, it is the layer's own dir and
   * cannot be enforced). A read-write layer without parents, and every vfs
   * layer, is its own `diff/<id>` and mounts nothing.
   *
   * @throws {InvalidLayerId} {LayerNotFound} {MountError} {LayerDamaged} (the
   *   layer or a parent is damaged: the error names which and what is wrong)
   * @throws {LayerInUse} `options.mountLabel` differs from the label of the
   *   view mounted now (a mounted view keeps its label: put it first)
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * import { LayerDamaged } from "../errors.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * await store.createReadWrite("ctr1", "base");
   * await store.createReadWrite("ctr2", "base");
   * await Deno.remove(`${root}/diff/ctr2`, { recursive: true }); // damaged by hand
   * await assert.rejects(store.get("ctr2"), LayerDamaged);
   * const rootfs = await store.get("ctr1"); // on vfs: the layer's own dir
   * assert.equal(rootfs, `${store.root}/diff/ctr1`);
   * await Deno.writeTextFile(`${rootfs}/hello`, "hi\n");
   * await store.put("ctr1");
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async get(id: string, options: GetOptions = {}): Promise<string> {
    this.#open();
    const ctx = this.#ctx;
    validateLayerId(id);
    let target: string;
    try {
      target = await getView(ctx, id, options.mountLabel);
    } catch (e) {
      throw await this.#explained(id, e);
    }
    // A view that is the layer's own dir mounts nothing, so nothing has
    // failed if that dir is gone: one lstat, only for such views.
    if (target === ctx.layout.diff(id) && !isDirSync(target)) {
      await putView(ctx, id).catch(() => {}); // give back the count just taken
      throw await this.#explained(id, undefined) ??
        new LayerDamaged(id, `diff/${id} is missing`, { root: this.root });
    }
    return target;
  }

  /**
   * Releases one `get`; the last one (across processes) unmounts. A mount
   * nobody counted is unmounted too.
   *
   * @throws {InvalidLayerId} {LayerNotFound} {LayerNotMounted} (nothing to release) {MountError}
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * import { LayerNotMounted } from "../errors.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.createReadWrite("ctr1");
   * await store.get("ctr1");
   * await store.put("ctr1");
   * await assert.rejects(store.put("ctr1"), LayerNotMounted); // nothing left to release
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async put(id: string): Promise<void> {
    this.#open();
    await putView(this.#ctx, validateLayerId(id));
  }

  /**
   * Removes a layer: refuses while it is mounted (by anyone) or is a parent,
   * unless `force` (then it is unmounted and its descendants removed first;
   * a mounted descendant is refused, so force never takes a view from
   * someone who did not name it). Everything is checked before anything is
   * removed. Each layer disappears atomically (`layers/<id>` renamed to
   * `-removing`), then its dirs are renamed to `-removing` and deleted.
   *
   * A damaged layer (see {@link LayerInfo.damaged}) is removed the same
   * way: nothing of its records needs to be readable, and what is left of
   * its dirs goes.
   *
   * A layer an image of the store uses (`images/index.json` names it) is
   * refused with `LayerUsedByImage`, with `force` too, and so is a forced
   * removal with such a layer among the descendants: the image would name
   * a layer that is gone. Remove the image first (`removeImage`, `layerfs
   * rmi`), which removes the layers only it uses. The index is read under
   * the store lock, where loads and pulls record their images' layers
   * ({@link whileLayersExist}), so neither can race the other.
   *
   * @returns The layers removed, descendants first, `id` last.
   * @throws {InvalidLayerId} {LayerNotFound} {LayerHasChildren} {LayerInUse} {LayerUsedByImage}
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * import { LayerHasChildren } from "../errors.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * await store.createReadWrite("ctr1", "base");
   * await assert.rejects(store.remove("base"), LayerHasChildren);
   * await store.remove("ctr1");
   * await store.create("app", "base");
   * assert.deepEqual(await store.remove("base", { force: true }), ["app", "base"]);
   * assert.deepEqual(await store.list(), []);
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async remove(id: string, options: RemoveOptions = {}): Promise<string[]> {
    this.#open();
    return await removeLayer(this.#ctx, validateLayerId(id), !!options.force);
  }

  /**
   * Runs `fn` under the store lock once every layer of `ids` exists: the
   * place to record, outside the layer store, that something uses them (a
   * load or pull writes its image's references to `images/index.json`
   * here). {@link remove} reads those references under the same lock, so
   * a concurrent remove either sees them and refuses the layer, or removed
   * it before, and then `fn` does not run. `fn` must not call methods of
   * this store that take its lock (those that change it, `list`, `get`,
   * `put`): the lock is not reentrant.
   *
   * @throws {InvalidLayerId} {LayerNotFound} (a layer of `ids` is gone; `fn` did not run)
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * import { LayerNotFound } from "../errors.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * assert.equal(await store.whileLayersExist(["base"], () => Promise.resolve(7)), 7);
   * await assert.rejects(store.whileLayersExist(["base", "gone"], () => Promise.resolve(7)), LayerNotFound);
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async whileLayersExist<T>(
    ids: readonly string[],
    fn: () => Promise<T>,
  ): Promise<T> {
    this.#open();
    for (const id of ids) validateLayerId(id);
    return await this.#ctx.locked(async () => {
      for (const id of ids) {
        if (!(await isLayer(this.#ctx.layout, id))) throw new LayerNotFound(id);
      }
      return await fn();
    });
  }

  /**
   * Disk usage of a layer's own dir and of its whole chain (bytes allocated
   * and inodes), as containerd's `Usage`.
   *
   * @throws {InvalidLayerId} {LayerNotFound}
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * await store.createReadWrite("app", "base");
   * await Deno.writeTextFile(`${await store.get("app")}/hello`, "hi\n");
   * await store.put("app");
   * const { layer, chain } = await store.usage("app");
   * assert.ok(layer.size > 0 && layer.inodes >= 2); // its dir and hello
   * assert.ok(chain.inodes > layer.inodes); // plus base's
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async usage(id: string): Promise<LayerUsage> {
    this.#open();
    const parents = await this.#ctx.parentsOf(validateLayerId(id));
    try {
      const layer = diskUsage(this.#ctx.layout.diff(id));
      const chain = { ...layer };
      for (const p of parents) {
        const u = diskUsage(this.#ctx.layout.diff(p));
        chain.size += u.size;
        chain.inodes += u.inodes;
      }
      return { layer, chain };
    } catch (e) {
      throw await this.#explained(id, e);
    }
  }

  /**
   * Status as key/value rows: backend, why it was chosen, root, backing
   * filesystem, the backend's own rows, layer and mount counts.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * const status = new Map(await store.status());
   * assert.equal(status.get("backend"), "vfs");
   * assert.equal(status.get("root"), root);
   * assert.equal(status.get("layers"), "1");
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async status(): Promise<[string, string][]> {
    this.#open();
    const ctx = this.#ctx;
    const layers = await this.list();
    const mounted =
      (await readMountInfo()).filter((m) =>
        m.mountPoint.startsWith(ctx.layout.mnt(""))
      ).length;
    return [
      ["backend", this.backend],
      ["backend reason", this.#reason],
      ["root", this.root],
      ["backing filesystem", statfs(this.root).name],
      ["whiteout format", ctx.backend.whiteoutFormat],
      ...ctx.backend.statusRows(ctx.settings),
      ["layers", String(layers.length)],
      ["mounted views", String(mounted)],
      ["outstanding gets", String(layers.reduce((n, l) => n + l.mounts, 0))],
      ["format version", String(FORMAT_VERSION)],
    ];
  }

  /**
   * The dirs of a layer, as strings: `diff`, `mnt` (when its view is a
   * mount), the backend's own (overlay: `work`), `lowerdirs` (parents' diff
   * dirs joined by ":"), `parents`, `readWrite`, `mountLabel`.
   *
   * @throws {InvalidLayerId} {LayerNotFound}
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * await store.createReadWrite("ctr1", "base");
   * assert.deepEqual(await store.metadata("ctr1"), {
   *   backend: "vfs",
   *   diff: `${root}/diff/ctr1`,
   *   parents: "base",
   *   readWrite: "true",
   * });
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async metadata(id: string): Promise<Record<string, string>> {
    this.#open();
    const ctx = this.#ctx;
    const parents = await ctx.parentsOf(validateLayerId(id));
    const meta = await readMeta(ctx.layout, id);
    const out: Record<string, string> = {
      backend: this.backend,
      diff: ctx.layout.diff(id),
      parents: parents.join(","),
      readWrite: String(meta.readWrite),
    };
    const plan = ctx.plan(id, parents, meta);
    if (plan.kind !== "none") out.mnt = plan.target;
    if (parents.length > 0 && ctx.backend.capabilities.mounts) {
      out.lowerdirs = parents.map((p) => ctx.layout.diff(p)).join(":");
    }
    Object.assign(out, ctx.backend.layerPaths(ctx.layout, id));
    if (meta.mountLabel) out.mountLabel = meta.mountLabel;
    return out;
  }

  /**
   * Unmounts every view under this store's `mnt/` and forgets all counts
   * (what a daemon does on shutdown; also removes mounts nobody counted).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.createReadWrite("ctr1");
   * await store.get("ctr1");
   * await store.cleanup(); // forgets the outstanding get
   * assert.equal((await store.list())[0].mounts, 0);
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async cleanup(): Promise<void> {
    this.#open();
    await unmountAll(this.#ctx);
  }

  /**
   * Closes the store object (it holds no open files between calls; later
   * calls throw). Diff streams already handed out still give back their views.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * import { StoreError } from "../errors.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * store.close();
   * await assert.rejects(store.list(), StoreError);
   * await Deno.remove(root, { recursive: true });
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
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * import { readTar } from "../archive/tar/mod.ts";
   * import { writeToFile } from "../archive/write_file.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * await store.createReadWrite("ctr", "base");
   * await Deno.writeTextFile(`${await store.get("ctr")}/hello`, "hi\n");
   * await store.put("ctr");
   * const tar = await new Response(store.diff("ctr")).bytes();
   * const names = [];
   * for await (const e of readTar(tar)) names.push(e.header.name);
   * assert.deepEqual(names, ["hello"]);
   * using out = await Deno.create(`${root}/ctr.tar`);
   * await writeToFile(store.diff("ctr", "base"), out); // ctr's view against base's
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  diff(id: string, parent?: string | null): ReadableStream<Uint8Array> {
    this.#open();
    validateLayerId(id);
    const cmp = comparison(this.#ctx, id, parent);
    cmp.catch(() => {}); // reported through the stream
    // Views are taken on the first read, so a stream never read mounts nothing.
    return deferredByteStream(async () => {
      const { dirs, release } = await openComparison(this.#ctx, await cmp);
      // The export opens its dirs as it reads: a dir deleted by hand would
      // surface mid-stream as a bare openat error, not naming the layer.
      const gone = [dirs.dir, ...dirs.parentDirs].find((d) => !isDirSync(d));
      if (gone !== undefined) {
        await release();
        throw await this.#explained(id, undefined) ??
          new StoreError(`${gone} is missing; run "layerfs check"`);
      }
      return { stream: (await exporter()).layerTar(dirs), release };
    });
  }

  /**
   * The exact tar layer `id` was applied from (`applyDiff`,
   * `applyDiffChecked`, an image load), rebuilt from the tar-split record
   * kept then and the layer's files: the same bytes, so the same DiffID.
   * Null when the layer has no record (made by `create` or `commit`, or
   * before records existed): use {@link diff}.
   *
   * The stream checks as it goes (each file's size and crc32, the whole
   * tar's length and sha256, and `options.sha256` when given) and errors
   * with `LayerNotExact` before its last chunk when the layer changed
   * since: write it to a temp file and keep it only when it ends without an
   * error, else export afresh with {@link diff}.
   *
   * @throws {InvalidLayerId} {LayerNotFound}; {LayerNotExact} through the stream.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * import { tarHeader, TarWriter } from "../archive/tar/mod.ts";
   * const w = new TarWriter();
   * const bytes = new Response(w.readable).bytes();
   * await w.add(tarHeader({ name: "hello", size: 3 }), new TextEncoder().encode("hi\n"));
   * await w.close();
   * const tar = new Uint8Array([...await bytes, ...new Uint8Array(4096)]); // extra zeros
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.applyDiff("base", undefined, tar);
   * const again = await new Response(await store.exactDiff("base")).bytes();
   * assert.deepEqual(again, tar); // byte for byte, trailing zeros included
   * await store.create("empty");
   * assert.equal(await store.exactDiff("empty"), null);
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async exactDiff(
    id: string,
    options: { sha256?: string } = {},
  ): Promise<ReadableStream<Uint8Array> | null> {
    this.#open();
    await this.#ctx.parentsOf(validateLayerId(id));
    const l = this.#ctx.layout;
    try {
      await Deno.lstat(l.tarsplit(id));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
    const { rebuildLayerTar } = await tarSplit();
    return rebuildLayerTar(id, l.tarsplit(id), l.diff(id), options);
  }

  /**
   * The byte length of the tar layer `id` was applied from (what
   * {@link exactDiff} would stream), from its tar-split record; null when it
   * has none (made by `create` or `commit`) or the record is unreadable.
   *
   * @throws {InvalidLayerId} {LayerNotFound}
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.applyDiff("base", undefined, new Uint8Array(3072)); // an empty tar, padded
   * assert.equal(await store.exactDiffSize("base"), 3072);
   * await store.create("empty");
   * assert.equal(await store.exactDiffSize("empty"), null);
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async exactDiffSize(id: string): Promise<number | null> {
    this.#open();
    await this.#ctx.parentsOf(validateLayerId(id));
    return (await tarSplit()).recordedTarSize(this.#ctx.layout.tarsplit(id));
  }

  /**
   * Makes a new read-only layer `id` on `parent` from an OCI layer tar
   * (gzip and zstd are detected). The layer is built entirely in staging
   * and published with one rename; on any error nothing is left. A
   * tar-split record of the tar is kept with it ({@link exactDiff}). It never
   * applies into an existing layer: of concurrent applies of one id exactly
   * one succeeds and every other gets `LayerExists`. Returns the applied
   * size in bytes.
   *
   * (moby's graph drivers allow "create, then ApplyDiff into it"; layerfs
   * does not, so a tar can never change a layer something already uses.)
   *
   * @throws {InvalidLayerId} {LayerExists} {ParentNotFound} {ParentNotCommitted} {InvalidArchive}
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * import { LayerExists } from "../errors.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.createReadWrite("ctr");
   * await Deno.writeTextFile(`${await store.get("ctr")}/hello`, "hi\n");
   * await store.put("ctr");
   * const tar = await new Response(store.diff("ctr")).bytes(); // or a file, a stream
   * assert.equal(await store.applyDiff("base", undefined, tar), 3);
   * assert.equal(await Deno.readTextFile(`${root}/diff/base/hello`), "hi\n");
   * await assert.rejects(store.applyDiff("base", undefined, tar), LayerExists);
   * const gz = ReadableStream.from([tar]).pipeThrough(new CompressionStream("gzip"));
   * await store.applyDiff("copy", "base", gz); // gzip and zstd are detected
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async applyDiff(
    id: string,
    parent: string | null | undefined,
    tar: TarSource,
  ): Promise<number> {
    const size = await this.#build(
      id,
      parent,
      false,
      undefined,
      async (dirs, record) =>
        (await (await tarSplit()).applyLayerTarRecorded(dirs, tar, record))
          .size,
    );
    return size!;
  }

  /**
   * `applyDiff` with a check before publishing: after the tar is extracted
   * into staging, `beforePublish` runs (images drain the rest of the blob
   * and compare its digests there); when it throws, nothing is published.
   * The tar must be uncompressed. Returns the applied size in bytes.
   *
   * With `options.parentReady`, `parent` need not exist yet: the tar is
   * extracted at once and the layer is published once that promise settles
   * and `parent` is there (image loads extract layers in parallel this way;
   * a backend that copies its parent waits for it before copying).
   *
   * With `options.tarSha256`, the tar-split record kept with the layer takes
   * the caller's sha256 of `tar` (hex, of every byte of it: called once the
   * stream is read to its end) instead of hashing the same bytes again; an
   * image load hashes the tar for its DiffID anyway. A wrong digest is
   * caught later, not trusted: `exactDiff` checks the rebuilt tar against it.
   *
   * @throws {InvalidLayerId} {LayerExists} {ParentNotFound} {ParentNotCommitted}
   *   {InvalidArchive} and whatever `beforePublish` throws.
   *
   * @example
   * ```ts ignore
   * await store.applyDiffChecked("base", undefined, tar, async () => {
   *   if (!(await digestMatches())) throw new Error("digest mismatch");
   * });
   * ```
   */
  async applyDiffChecked(
    id: string,
    parent: string | null | undefined,
    tar: TarSource,
    beforePublish: () => Promise<void>,
    options: {
      /**
       * Extract before `parent` exists; publish once this settles.
       * @default {undefined (parent must exist)}
       */
      parentReady?: Promise<void>;
      /**
       * The caller's sha256 (hex) of `tar`, called after it was read to its end.
       * @default {undefined (the tar is hashed for the record here)}
       */
      tarSha256?: () => string;
    } = {},
  ): Promise<number> {
    this.#open();
    validateLayerId(id);
    const p = noParent(parent);
    if (p !== undefined) validateLayerId(p);
    return await (await chain()).applyCheckedLayer(
      this.#ctx,
      id,
      p,
      tar,
      beforePublish,
      options,
    );
  }

  /**
   * {@link applyDiffChecked} for a caller that extracts the tar itself, in
   * another thread (image loads hand each layer to a worker): `fill` gets
   * the layer's staging as plain data (its dir, its parents' dirs, the
   * whiteout format, where the tar-split record goes), extracts into it
   * with `applyLayerTarRecorded`, checks what it must, and returns the
   * applied size. When it throws, the staging dir is removed and nothing is
   * published; the store's locks and state stay with the caller's thread.
   * `options.parentReady` is as in {@link applyDiffChecked};
   * `options.imageLayer` marks the layer as an image load's or pull's (see
   * {@link LayerInfo.imageLayer}: only such layers are ever pruned).
   *
   * @throws {InvalidLayerId} {LayerExists} {ParentNotFound} {ParentNotCommitted}
   *   and whatever `fill` throws.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * import { applyLayerTarRecorded } from "../archive/layer.ts";
   * import { tarHeader, TarWriter } from "../archive/tar/mod.ts";
   * const w = new TarWriter();
   * const bytes = new Response(w.readable).bytes();
   * await w.add(tarHeader({ name: "hello", size: 3 }), new TextEncoder().encode("hi\n"));
   * await w.close();
   * const tar = await bytes;
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * const size = await store.applyDiffStaged("base", undefined, async (staged) => {
   *   assert.equal(staged.dirs.format, "vfs"); // plain data: postable to a worker
   *   return (await applyLayerTarRecorded(staged.dirs, tar, staged.record)).size;
   * });
   * assert.equal(size, 3);
   * assert.equal(await Deno.readTextFile(`${root}/diff/base/hello`), "hi\n");
   * await assert.rejects(
   *   store.applyDiffStaged("bad", undefined, () => Promise.reject(new Error("no"))),
   *   Error,
   * );
   * assert.equal(await store.exists("bad"), false); // nothing published
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async applyDiffStaged(
    id: string,
    parent: string | null | undefined,
    fill: (staged: StagedLayer) => Promise<number>,
    options: { parentReady?: Promise<void>; imageLayer?: boolean } = {},
  ): Promise<number> {
    this.#open();
    validateLayerId(id);
    const p = noParent(parent);
    if (p !== undefined) validateLayerId(p);
    return await (await chain()).applyStagedLayer(
      this.#ctx,
      id,
      p,
      fill,
      options.parentReady,
      options.imageLayer,
    );
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
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.create("base");
   * await store.createReadWrite("app", "base");
   * await Deno.writeTextFile(`${await store.get("app")}/hello`, "hi\n");
   * await store.put("app");
   * assert.equal(await store.diffSize("app"), 3);
   * assert.equal(await store.diffSize("base", "app"), 0); // base adds nothing to app
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async diffSize(id: string, parent?: string | null): Promise<number> {
    this.#open();
    const measure = (await sizer()).layerDiffSize;
    return await this.#compared(id, parent, measure);
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
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await store.createReadWrite("ctr0");
   * await Deno.writeTextFile(`${await store.get("ctr0")}/a`, "a\n");
   * await store.put("ctr0");
   * await store.commit("ctr0", "base");
   * await store.createReadWrite("ctr1", "base");
   * const rootfs = await store.get("ctr1");
   * await Deno.writeTextFile(`${rootfs}/hello`, "hi\n");
   * await Deno.remove(`${rootfs}/a`);
   * await store.put("ctr1");
   * assert.deepEqual(await store.changes("ctr1"), [
   *   { path: "/a", kind: "delete" },
   *   { path: "/hello", kind: "add" },
   * ]);
   * assert.deepEqual(await store.changes("base", "ctr1"), [
   *   { path: "/a", kind: "add" },
   *   { path: "/hello", kind: "delete" },
   * ]);
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async changes(id: string, parent?: string | null): Promise<Change[]> {
    this.#open();
    const list = (await changeLister()).layerChanges;
    return await this.#compared(id, parent, list);
  }

  /**
   * Crash recovery, run by {@link openStore}: under the store lock, finishes
   * commits that died after their commit point, deletes the leftovers of
   * crashed operations (the rules of `recovery.ts`, the same `layerfs check`
   * reports), gives back the views that processes which have exited held
   * for one call (`holds.ts`: a killed `diff` against a non-parent),
   * unmounts views no count accounts for and reconciles mount counts with
   * mountinfo. Safe to call again at any time.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { openStore } from "./open.ts";
   * const root = await Deno.makeTempDir();
   * const store = await openStore({ root, backend: "vfs" });
   * await Deno.writeTextFile(`${root}/run/mounts.json.tmp-1-0123abcd`, "{"); // a crash's leftover
   * await store.recover();
   * await assert.rejects(Deno.stat(`${root}/run/mounts.json.tmp-1-0123abcd`), Deno.errors.NotFound);
   * store.close();
   * await Deno.remove(root, { recursive: true });
   * ```
   */
  async recover(): Promise<void> {
    this.#open();
    const ctx = this.#ctx;
    await ctx.locked(async () => {
      await finishCommits(ctx.layout, ctx.backend);
      const info = await readMountInfo();
      for (
        const { kind, path } of await findLeftovers(ctx.layout, ctx.backend)
      ) {
        const abs = `${ctx.root}/${path}`;
        try {
          if (kind === "lock") {
            await removeLockFile(abs);
          } else if (path.startsWith("mnt/")) {
            // Only a mount is unmounted: umount2 of a plain dir is EPERM for
            // a user who may not mount (a vfs store's), which left the
            // orphan dir there for good.
            if (mountAt(info, abs)) {
              await ctx.mounter.unmount(ctx.root, path.slice(4), abs);
            }
            await rmdirIfPresent(abs);
          } else {
            await removeIfPresent(abs, true);
          }
        } catch (e) {
          // One leftover with a mount inside (or a helper that refuses) must
          // not make the store unopenable: `layerfs check` reports it.
          if (!(e instanceof LayerfsError)) throw e;
        }
      }
      // Also gives back what dead processes held (reconciled, _views.ts).
      await unmountUncounted(ctx);
    });
  }

  // ---- internals ----

  /**
   * What to throw for a failed operation on layer `id`: the error itself
   * when it is already ours and about the layer, else {@link LayerDamaged}
   * when the layer or its chain is damaged (the syscall error as its
   * cause), else the error. Runs only after a failure, so healthy
   * operations pay nothing for it.
   */
  async #explained(id: string, e: unknown): Promise<unknown> {
    if (
      e instanceof LayerDamaged || e instanceof LayerNotFound ||
      e instanceof InvalidLayerId
    ) return e;
    const ctx = this.#ctx;
    const damage = await chainDamage(ctx.layout, ctx.backend, id, e)
      .catch(() => undefined);
    return damage ?? e;
  }

  /** `compared`, with a failure explained by the damage of `id` or `parent`. */
  async #compared<T>(
    id: string,
    parent: string | null | undefined,
    fn: (dirs: LayerDirs) => Promise<T>,
  ): Promise<T> {
    validateLayerId(id);
    try {
      return await compared(this.#ctx, id, parent, fn);
    } catch (e) {
      const other = noParent(parent);
      const why = await this.#explained(id, e);
      throw why === e && other !== undefined && isLayerIdText(other)
        ? await this.#explained(other, e)
        : why;
    }
  }

  #open(): void {
    if (this.#closed) {
      throw new StoreError(
        `The store at ${this.root} is closed; open it again`,
      );
    }
  }

  async #build<R>(
    id: string,
    parent: string | null | undefined,
    readWrite: boolean,
    mountLabel: string | undefined,
    fill?: Parameters<typeof buildLayer<R>>[3]["fill"],
  ): Promise<R | undefined> {
    this.#open();
    validateLayerId(id);
    const p = noParent(parent);
    if (p !== undefined) validateLayerId(p);
    return await buildLayer(this.#ctx, id, p, { readWrite, mountLabel, fill });
  }
}

/** Whether `path` is a directory (sync: one lstat on get's path). */
function isDirSync(path: string): boolean {
  try {
    return Deno.lstatSync(path).isDirectory;
  } catch {
    return false;
  }
}

function isLayerIdText(id: string): boolean {
  try {
    validateLayerId(id);
    return true;
  } catch {
    return false;
  }
}
