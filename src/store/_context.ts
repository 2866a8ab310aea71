/**
 * Internal: what every part of an open store shares: its layout, its backend
 * and the settings fixed at init, who mounts, the store lock, and the one
 * place where a layer's records become a mount plan or archive dirs.
 *
 * @module
 */

import type { LayerDirs, WhiteoutFormat } from "../archive/types.ts";
import type { BackendName } from "../backends/registry.ts";
import type { Backend, BackendSettings } from "../backends/types.ts";
import { LayerDamaged, LayerNotFound } from "../errors.ts";
import type { StoreLayout } from "../layout.ts";
import type { Mounter } from "../mount/mounter.ts";
import type { MountPlan } from "../mount/plan.ts";
import { validateLayerId } from "./id.ts";
import { type LayerMeta, readMeta, readParents } from "./meta.ts";
import { withStoreLock } from "./refcounts.ts";

/** The shared state of an open store. */
export class StoreContext {
  /** Paths. */
  readonly layout: StoreLayout;
  /** The backend, fixed at init. */
  readonly backend: Backend<BackendName>;
  /** Its settings from layerfs.json. */
  readonly settings: BackendSettings;
  /** Who mounts and unmounts (in-process as root, or the helper). */
  readonly mounter: Mounter;

  /** Bundles the parts; {@link openStore} builds it. */
  constructor(
    layout: StoreLayout,
    backend: Backend<BackendName>,
    settings: BackendSettings,
    mounter: Mounter,
  ) {
    this.layout = layout;
    this.backend = backend;
    this.settings = settings;
    this.mounter = mounter;
  }

  /** Absolute store root. */
  get root(): string {
    return this.layout.root;
  }

  /** Runs `fn` under the store's exclusive lock. */
  locked<T>(fn: () => Promise<T>): Promise<T> {
    return withStoreLock(this.layout, fn);
  }

  /** The parent chain of an existing layer, nearest first. */
  async parentsOf(id: string): Promise<string[]> {
    const p = await readParents(this.layout, id);
    if (!p) throw new LayerNotFound(id);
    return p;
  }

  /** The plan of a layer's view, from its records (the only place plans are made). */
  plan(id: string, parents: string[], meta: LayerMeta): MountPlan {
    return this.backend.planMount({
      root: this.root,
      id,
      parents,
      readWrite: meta.readWrite,
      mountLabel: meta.mountLabel,
      userXattr: this.settings.userXattr === true,
    });
  }

  /**
   * {@link plan}, reading the layer's meta record. For a layer whose meta is
   * damaged it plans a read-only view: its callers (count reconciling on
   * open and remove, put) only need where the view would be mounted, which
   * is `mnt/<id>` either way, and one damaged layer must not make the store
   * unopenable. `get` reads the meta itself and refuses such a layer.
   */
  async planFor(id: string, parents: string[]): Promise<MountPlan> {
    let meta: LayerMeta;
    try {
      meta = await readMeta(this.layout, id);
    } catch (e) {
      if (!(e instanceof LayerDamaged)) throw e;
      meta = { readWrite: false };
    }
    return this.plan(id, parents, meta);
  }

  /** How the archive code sees `dir` as a layer on `parents` (the only place LayerDirs are made). */
  dirs(dir: string, parents: string[]): LayerDirs {
    return {
      dir,
      codec: this.backend.whiteoutCodec(this.settings),
      parentDirs: parents.map((p) => this.layout.diff(p)),
    };
  }

  /**
   * {@link dirs} as plain data (for a worker): the codec named by the
   * backend's whiteout format.
   */
  plainDirs(dirs: LayerDirs): {
    dir: string;
    parentDirs: string[];
    format: WhiteoutFormat;
    userXattr: boolean;
  } {
    return {
      dir: dirs.dir,
      parentDirs: dirs.parentDirs,
      format: this.backend.whiteoutFormat,
      userXattr: this.settings.userXattr === true,
    };
  }

  /** Every layer id, sorted (leftovers and temp files skipped). */
  async ids(): Promise<string[]> {
    const ids: string[] = [];
    for await (const e of Deno.readDir(this.layout.layers())) {
      if (!e.isFile) continue;
      try {
        ids.push(validateLayerId(e.name));
      } catch { /* -removing leftovers, temp files */ }
    }
    return ids.sort();
  }

  /**
   * Direct children of every layer. A layer whose `layers/<id>` cannot be
   * read is nobody's known child (`check` reports it), so it cannot stop a
   * forced remove of another layer.
   */
  async children(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const id of await this.ids()) {
      let p: string | undefined;
      try {
        p = (await readParents(this.layout, id))?.[0];
      } catch (e) {
        if (!(e instanceof LayerDamaged)) throw e;
        continue;
      }
      if (p === undefined) continue;
      const list = out.get(p) ?? [];
      list.push(id);
      out.set(p, list);
    }
    return out;
  }
}

/** `undefined`, `null` and `""` all mean "no parent" (moby passes ""). */
export function noParent(
  parent: string | null | undefined,
): string | undefined {
  return parent === null || parent === "" ? undefined : parent;
}
