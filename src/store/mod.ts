/**
 * The layer store: {@link openStore} and the {@link Store} it returns, plus
 * the id rule.
 *
 * @module
 */

export {
  type CreateOptions,
  type GetOptions,
  type LayerInfo,
  type LayerUsage,
  type RemoveOptions,
  Store,
  type Usage,
} from "./store.ts";
export type { StagedLayer } from "./_chain.ts";
export { openStore, type OpenStoreOptions } from "./open.ts";
export { validateLayerId } from "./id.ts";
export { planLayerMount } from "./plan_layer.ts";
