/**
 * The contract between the store and the archive code: what the store calls to
 * turn a layer directory into an OCI layer tar and back. The store owns ids,
 * staging, locking and publishing; these functions only read or fill a directory.
 *
 * A façade: the shared types live in `types.ts` and the whiteout codecs in
 * `whiteout/`; no module of src/archive imports this one, so it closes no
 * import cycle.
 *
 * @module
 */

export type {
  ApplyLayerOptions,
  ArchiveProgress,
  Change,
  LayerDirs,
  LayerTarOptions,
  TarSource,
  WhiteoutCodec,
  WhiteoutFormat,
} from "./types.ts";
export {
  aufsCodec,
  layerCodec,
  overlayCodec,
  overlayUserXattrCodec,
  vfsCodec,
  whiteoutCodec,
} from "./whiteout/mod.ts";
export { applyLayerTar } from "./extract/apply_layer.ts";
export { layerTar } from "./export/layer_tar.ts";
export { applyLayerTarRecorded, rebuildLayerTar } from "./tarsplit/mod.ts";
export { layerChanges } from "./changes/layer_changes.ts";
export { layerDiffSize } from "./changes/layer_size.ts";
