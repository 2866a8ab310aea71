/**
 * Internal: what `diff`, `changes` and `diffSize` compare. Against its own
 * parents (or its direct parent) a layer is read from its own dir: the fast
 * path. Against any other layer both complete views are compared entry by
 * entry, as moby's NaiveDiffDriver does: they are taken as holds of this
 * process (`_held_views.ts`: counted, so neither layer can be removed
 * meanwhile, and recorded, so that recovery gives them back if the process
 * dies before it does) and put afterwards.
 *
 * @module
 */

import type { LayerDirs } from "../archive/types.ts";
import { vfsCodec } from "../archive/whiteout/vfs.ts";
import { noParent, type StoreContext } from "./_context.ts";
import { holdViews, releaseHeld } from "./_held_views.ts";
import { validateLayerId } from "./id.ts";

/** The layer's own dirs (fast path), or two layers whose complete views are compared. */
export type Comparison = { dirs: LayerDirs } | { views: [string, string] };

/** Dirs ready to read, and how to give back what was taken for them. */
export interface Opened {
  /** What the archive code reads. */
  dirs: LayerDirs;
  /** Puts the views taken (once; later calls do nothing). */
  release: () => Promise<void>;
}

/** What comparing `id` with `parent` needs, checked without mounting anything. */
export async function comparison(
  ctx: StoreContext,
  id: string,
  parent: string | null | undefined,
): Promise<Comparison> {
  parent = noParent(parent);
  const parents = await ctx.parentsOf(id);
  if (parent === undefined || parent === parents[0]) {
    return { dirs: ctx.dirs(ctx.layout.diff(id), parents) };
  }
  await ctx.parentsOf(validateLayerId(parent));
  return { views: [id, parent] };
}

/**
 * Makes a comparison's dirs available. Two complete trees are what the
 * archive code compares with the full-tree (vfs) codec, whatever the backend.
 */
export async function openComparison(
  ctx: StoreContext,
  cmp: Comparison,
): Promise<Opened> {
  if ("dirs" in cmp) return { dirs: cmp.dirs, release: async () => {} };
  const ids = cmp.views;
  // On vfs, a view mounts nothing (it is diff/<id>) but is still counted.
  const [view, parentView] = await holdViews(ctx, ids);
  let released = false;
  return {
    dirs: { dir: view, codec: vfsCodec, parentDirs: [parentView] },
    release: async () => {
      if (released) return;
      released = true;
      await releaseHeld(ctx, ids);
    },
  };
}

/** Runs `use` on what compares `id` with `parent`; views it took are put afterwards. */
export async function compared<T>(
  ctx: StoreContext,
  id: string,
  parent: string | null | undefined,
  use: (dirs: LayerDirs) => Promise<T>,
): Promise<T> {
  const { dirs, release } = await openComparison(
    ctx,
    await comparison(ctx, id, parent),
  );
  try {
    return await use(dirs);
  } finally {
    await release();
  }
}
