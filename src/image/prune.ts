/**
 * Unused image layers, and `pruneImages` (CLI `layerfs prune`), which
 * removes them and the blobs no image uses.
 *
 * An interrupted load or pull keeps the layers it completed (they were
 * verified, so the next pull of the image reuses them) but writes no
 * reference. Until that next pull they belong to no image. So do the
 * layers of a removed image that stayed while something used them (`rmi
 * --force` of an image a container is built on; the index records them as
 * `released`), once nothing does. The one rule for such layers, used by
 * `layerfs check` (which reports those an interruption left, not the
 * released ones: a store with them is healthy) and by `pruneImages` (which
 * removes both):
 *
 * A layer is an unused image layer when a load or pull made it (its meta
 * says so: `imageLayer`), its id is a chain id (64 lowercase hex), no image
 * of the index names it, it is not mounted, and every layer on it is an
 * unused image layer too. So a container layer (`create --rw --image`)
 * keeps its whole chain, and layers made by `create`, `apply` or `commit`
 * are never touched, whatever their id (a container named by a 64-hex id,
 * as docker names them, is the user's). Layers loaded before the mark
 * existed (layerfs 0.x stores) carry none: they are never pruned.
 *
 * @module
 */

import { LayerfsError, LayerNotFound } from "../errors.ts";
import type { Store } from "../store/store.ts";
import { blobsOf } from "./images.ts";
import { CHAIN_ID, unusedImageLayers } from "./unused_layers.ts";
import {
  anyLayerBusy,
  ensureDirs,
  forgetReleased,
  imagesDir,
  layerLockPath,
  readIndex,
  tryFlock,
  withImagesLock,
} from "./image_store.ts";

/** What {@link pruneImages} did. */
export interface PrunedImages {
  /** Layers removed, top first. */
  removedLayers: string[];
  /** Unused layers left because a load or pull is working on them right now. */
  busy: string[];
  /** Blobs of `images/blobs/sha256/` removed (hex): kept by pulls, used by no image. */
  removedBlobs: string[];
  /** Unused blobs were left because a load or pull was running. */
  blobsSkipped: boolean;
}

/**
 * Removes the store's unused image layers (see the module doc), top first,
 * and then the blobs of `images/blobs/sha256/` no image uses (kept with
 * `keepBlobs`): what interrupted loads and pulls left. A layer a load or pull is working
 * on at this moment (its lock is held) is left, and so are the layers
 * below it; a layer that gained a child, a mount or an image meanwhile is
 * left too.
 *
 * @param store An open store.
 * @returns The layers removed, and those left because they were busy.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore } from "../../mod.ts";
 * import { pruneImages } from "./prune.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * const left = "f".repeat(64); // as an interrupted pull leaves a layer
 * await store.applyDiffStaged(left, undefined, () => Promise.resolve(0), { imageLayer: true });
 * await store.create("mine"); // not an image layer: never pruned
 * await store.create("e".repeat(64), undefined); // nor is this, a chain id made by hand
 * const pruned = await pruneImages(store);
 * assert.deepEqual(pruned.removedLayers, [left]);
 * assert.deepEqual((await store.list()).map((l) => l.id).sort(), ["e".repeat(64), "mine"]);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function pruneImages(store: Store): Promise<PrunedImages> {
  const layers = await store.list();
  const order = unusedImageLayers(await readIndex(store), layers);
  const parentOf = new Map(layers.map((l) => [l.id, l.parent]));
  const removedLayers: string[] = [];
  const busy: string[] = [];
  const kept = new Set<string>();
  if (order.length) await ensureDirs(imagesDir(store));
  for (const id of order) {
    // A layer on it stayed: so does it (its removal would be refused).
    let outcome: "removed" | "gone" | "kept" = "kept";
    if (!kept.has(id)) {
      // Under the layer's lock, as storeImage holds it while it reuses a
      // layer (the store refuses one an image names by then).
      const lock = await tryFlock(layerLockPath(store, id));
      if (!lock) busy.push(id);
      else {
        try {
          outcome = await removeUnused(store, id);
        } finally {
          lock.close();
        }
      }
    }
    if (outcome === "removed") removedLayers.push(id);
    const p = parentOf.get(id);
    if (outcome === "kept" && p) kept.add(p);
  }
  if (removedLayers.length) await forgetReleased(store, removedLayers);
  const blobs = await pruneBlobs(store);
  return {
    removedLayers,
    busy,
    removedBlobs: blobs ?? [],
    blobsSkipped: blobs === undefined,
  };
}

/**
 * Removes the blobs no image uses (layer blobs an interrupted pull kept
 * with `keepBlobs`), under `images/lock`; undefined, removing nothing,
 * while any load or pull holds a layer lock: one may have kept a blob and
 * not yet written the references that make it used. A pull that starts
 * after the busy check cannot put a blob in place before the deletes are
 * done: it keeps blobs (renames them into place) under `images/lock` too.
 */
async function pruneBlobs(store: Store): Promise<string[] | undefined> {
  const dir = `${imagesDir(store)}/blobs/sha256`;
  return await withImagesLock(store, async () => {
    const used = new Set<string>();
    for (const r of Object.values((await readIndex(store)).images)) {
      for (const b of await blobsOf(store, r)) used.add(b);
    }
    const unused = (await Array.fromAsync(Deno.readDir(dir)))
      .map((e) => e.name).filter((n) => CHAIN_ID.test(n) && !used.has(n))
      .sort();
    if (unused.length === 0) return [];
    if (await anyLayerBusy(store)) return undefined;
    for (const n of unused) await Deno.remove(`${dir}/${n}`);
    return unused;
  });
}

/**
 * Removes `id` (caller holds its lock); the store refuses it if an image
 * names it by now (`LayerUsedByImage`), or a child or a mount came.
 */
async function removeUnused(
  store: Store,
  id: string,
): Promise<"removed" | "gone" | "kept"> {
  try {
    await store.remove(id);
    return "removed";
  } catch (e) {
    if (e instanceof LayerNotFound) return "gone";
    if (e instanceof LayerfsError) return "kept"; // an image, a child or a mount came meanwhile
    throw e;
  }
}
