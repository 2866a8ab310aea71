/**
 * Re-planning a layer's mount from the store's own metadata: what the
 * privileged helper calls so that it never takes a plan (or any option) from
 * its caller, only a store root and a layer id.
 *
 * @module
 */

import { LayerNotFound, StoreError } from "../errors.ts";
import type { MountPlan } from "../mount/plan.ts";
import { readConfig } from "../store/config.ts";
import { validateLayerId } from "../store/id.ts";
import { StoreLayout } from "../store/layout.ts";
import { readMeta, readParents } from "../store/meta.ts";
import { backendByName } from "./registry.ts";

/**
 * Reads `layerfs.json`, `layers/<id>` and the `meta/` records of the chain and
 * returns the layer's MountPlan (plain data). Validates `id` first.
 *
 * @throws {InvalidLayerId} for a bad id.
 * @throws {LayerNotFound} when the layer does not exist.
 * @throws {StoreError} when the store is not initialised or is corrupt.
 *
 * @example
 * ```ts ignore
 * import { planLayerMount } from "./plan_from_disk.ts";
 * const plan = await planLayerMount("/var/lib/layerfs", "ctr1");
 * console.log(plan.kind, plan.target);
 * ```
 */
export async function planLayerMount(
  root: string,
  id: string,
): Promise<MountPlan> {
  validateLayerId(id);
  const layout = new StoreLayout(root);
  const config = await readConfig(layout);
  if (!config) {
    throw new StoreError(`${root} is not a layerfs store (no layerfs.json)`);
  }
  const parents = await readParents(layout, id);
  if (!parents) throw new LayerNotFound(id);
  const meta = await readMeta(layout, id);
  return backendByName(config.backend).planMount({
    root: layout.root,
    id,
    parents,
    readWrite: meta.readWrite,
    mountLabel: meta.mountLabel,
    userXattr: config.userXattr === true,
  });
}
