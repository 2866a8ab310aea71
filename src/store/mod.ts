/**
 * The layer store: {@link openStore} and the {@link Store} it returns, plus
 * the id rule and the on-disk layout.
 *
 * @module
 */

export {
  type CreateOptions,
  type GetOptions,
  type LayerInfo,
  openStore,
  type OpenStoreOptions,
  type RemoveOptions,
  Store,
} from "./store.ts";
export { validateLayerId } from "./id.ts";
export { shortLinkName, StoreLayout } from "./layout.ts";
