/**
 * The store's entry points as `mod.ts` exports them, each loading the store
 * on its first call.
 *
 * Why: `open.ts` brings ~50 modules (the store, its backends, mounting,
 * mount counts, recovery: ~0.34 MB of source) that a tool importing
 * `mod.ts` only to apply or pack one tar never runs, and a process pays for
 * every module it loads before its first line (README "Start-up"). Both
 * functions are async anyway, so the `import()` changes nothing for
 * callers. The full documentation stays with each implementation.
 *
 * @module
 */

import type { MountPlan } from "../mount/plan.ts";
import type { OpenStoreOptions } from "./open.ts";
import type { Store } from "./store.ts";
import { loadModule } from "../_load_module.ts";

const openImpl = () =>
  loadModule<typeof import("./open.ts")>(
    new URL("./open.ts", import.meta.url),
  );
const planImpl = () =>
  loadModule<typeof import("./plan_layer.ts")>(
    new URL("./plan_layer.ts", import.meta.url),
  );

/**
 * Opens (and on first use initialises) a layer store at `options.root` (see
 * `src/store/open.ts`: the store lock, crash recovery, mount counts).
 *
 * @param options The root, the backend for a new store, who mounts.
 * @returns The open store; `close()` it when done.
 * @throws {BackendNotSupported} when the requested backend cannot run here or
 *   differs from the one the store was initialised with.
 * @throws {IncompatibleBackingFs} when the backing filesystem cannot host it.
 * @throws {StoreError} when layerfs.json is corrupt.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore } from "./lazy.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root: `${root}/store`, backend: "vfs" });
 * assert.equal(store.backend, "vfs");
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  return (await openImpl()).openStore(options);
}

/**
 * The mount plan of layer `id` of the store at `root`, read from disk
 * without opening the store (see `src/store/plan_layer.ts`; the helper
 * re-plans with it).
 *
 * @param root The store root.
 * @param id The layer.
 * @returns What mounting its view would do.
 * @throws {InvalidLayerId} {LayerNotFound} {StoreError}
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore, planLayerMount } from "./lazy.ts";
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
  return (await planImpl()).planLayerMount(root, id);
}
