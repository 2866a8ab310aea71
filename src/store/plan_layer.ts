/**
 * Re-planning a layer's mount from the store's own records: what the
 * privileged helper does so that it never takes a plan (or any option) from
 * its caller, only a store root and a layer id.
 *
 * @module
 */

import { backendByName } from "../backends/registry.ts";
import { LayerNotFound, StoreError } from "../errors.ts";
import { StoreLayout } from "../layout.ts";
import { directMounter } from "../mount/mounter.ts";
import type { MountPlan } from "../mount/plan.ts";
import { StoreContext } from "./_context.ts";
import { readConfig } from "./config.ts";
import { validateLayerId } from "./id.ts";
import { readParents } from "./meta.ts";

/**
 * Reads `layerfs.json`, `layers/<id>` and `meta/<id>` and returns the layer's
 * MountPlan (plain data). Validates `id` first.
 *
 * @throws {InvalidLayerId} for a bad id.
 * @throws {LayerNotFound} when the layer does not exist.
 * @throws {StoreError} when the store is not initialised or is corrupt.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore } from "./open.ts";
 * import { planLayerMount } from "./plan_layer.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await store.create("base");
 * const plan = await planLayerMount(store.root, "base");
 * assert.deepEqual(plan, { kind: "none", target: `${store.root}/diff/base` });
 * store.close();
 * await Deno.remove(root, { recursive: true });
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
  const ctx = new StoreContext(
    layout,
    backendByName(config.backend),
    config.userXattr ? { userXattr: true } : {},
    directMounter, // planning only: nothing is mounted here
  );
  return await ctx.planFor(id, parents);
}
