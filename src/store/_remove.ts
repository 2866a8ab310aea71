/**
 * Internal: removing layers. A layer stops existing atomically when
 * `layers/<id>` is renamed to `-removing`; its dirs are then renamed to
 * `-removing` and deleted, so a crash at any point leaves either the layer or
 * leftovers that the open-time sweep deletes. Nothing recursive ever crosses
 * into a mount.
 *
 * @module
 */

import {
  LayerHasChildren,
  LayerInUse,
  LayerNotFound,
  LayerUsedByImage,
} from "../errors.ts";
import { imagesUsing, readImageIndex } from "../image_index.ts";
import { mountAt, readMountInfo } from "../mount/mountinfo.ts";
import { syncDir } from "./_atomic.ts";
import type { StoreContext } from "./_context.ts";
import { mountInside, removeIfPresent, rmdirIfPresent } from "./_fs.ts";
import { reconciled, usesOf } from "./_views.ts";
import { dropHoldsOf } from "./holds.ts";
import { isLayer } from "./meta.ts";
import { removeCount, writeCounts } from "./refcounts.ts";

/** The ids images name their layers by (OCI chain ids). */
const CHAIN_ID = /^[0-9a-f]{64}$/;

/**
 * `remove`: see Store.remove. Reads no record of the layer beyond its
 * existence, so a damaged layer (unreadable `layers/<id>` or `meta/<id>`,
 * missing dirs) is removed like any other: what is there goes.
 *
 * A layer an image uses is refused (`LayerUsedByImage`), force or not: the
 * image index is read here, under the store lock, and a load or pull
 * records an image's layers under that lock too (`Store.whileLayersExist`),
 * so one of the two always sees the other.
 */
export async function removeLayer(
  ctx: StoreContext,
  id: string,
  force: boolean,
): Promise<string[]> {
  return await ctx.locked(async () => {
    if (!(await isLayer(ctx.layout, id))) throw new LayerNotFound(id);
    const { counts, info } = await reconciled(ctx);
    const order = await removalOrder(ctx, id, force);
    // Images name their layers by chain id (64 hex): only a removal that
    // reaches such a layer reads the index, so a damaged index blocks no
    // removal of containers and other layers no image can name.
    const named = [...order].reverse().filter((l) => CHAIN_ID.test(l)); // `id` first
    if (named.length > 0) {
      const [used] = imagesUsing(await readImageIndex(ctx.root), named);
      if (used) throw new LayerUsedByImage(used.layer, used.images, id);
    }
    // Something mounted inside a layer's own dirs (a volume bound into a
    // vfs rootfs) is not ours to unmount, and deleting through it would
    // delete the mounted files: refuse before anything changes.
    for (const victim of order) {
      await mountInside(
        info,
        ctx.layout.diff(victim),
        `remove layer "${victim}"`,
      );
    }
    // All checked before anything goes. Force takes the named layer from
    // whoever mounted it, never a descendant nobody named: a running
    // container's rootfs is refused until it is unmounted (or named itself).
    for (const victim of order) {
      const n = usesOf(ctx, victim, counts, info);
      if (n === 0 || (force && victim === id)) continue;
      throw victim === id
        ? new LayerInUse(victim, n)
        : new LayerInUse(victim, n, `remove "${id}" and its descendant`);
    }
    for (const victim of order) {
      const mnt = ctx.layout.mnt(victim);
      if (mountAt(info, mnt)) await ctx.mounter.unmount(ctx.root, victim, mnt);
      // Its holds go before its count, so none is released against a new
      // layer of the same id.
      dropHoldsOf(ctx.layout, [victim]);
      delete counts[victim];
      await deleteLayer(ctx, victim);
    }
    await writeCounts(ctx.layout, counts);
    return order;
  });
}

/** `id` and, with force, its descendants, deepest first. */
async function removalOrder(
  ctx: StoreContext,
  id: string,
  force: boolean,
): Promise<string[]> {
  const children = await ctx.children();
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
async function deleteLayer(ctx: StoreContext, id: string): Promise<void> {
  const l = ctx.layout;
  // The layer stops existing here, atomically.
  await Deno.rename(l.layers(id), l.layers(`${id}-removing`));
  await syncDir(l.layers());
  await purgeLayer(ctx, id);
  await Deno.remove(l.layers(`${id}-removing`));
}

/**
 * Removes every trace of a layer that has no `layers/<id>` (caller holds the
 * lock): its view is unmounted (through the Mounter), `mnt/<id>` is only ever
 * rmdir'ed (a recursive delete there would walk into a live union view and
 * delete the parents' files), the backend removes its own entries, and
 * `diff/`, `meta/` and `tarsplit/` are renamed to `-removing` and deleted,
 * and its holds and count file go (a layer purged by recovery has no other
 * rule that would delete them).
 */
export async function purgeLayer(ctx: StoreContext, id: string): Promise<void> {
  const l = ctx.layout;
  const mnt = l.mnt(id);
  if (mountAt(await readMountInfo(), mnt)) {
    await ctx.mounter.unmount(ctx.root, id, mnt);
  }
  await rmdirIfPresent(mnt);
  await ctx.backend.removeLayer(l, id);
  for (const p of [l.diff(id), l.meta(id), l.tarsplit(id)]) {
    try {
      await Deno.rename(p, `${p}-removing`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    await removeIfPresent(`${p}-removing`, true);
  }
  dropHoldsOf(l, [id]);
  removeCount(l, id);
}
