/**
 * Images: docker-archive and OCI image layouts loaded into the store, their
 * layers under OCI chain ids, their references, manifests and configs in
 * `<root>/images/`.
 *
 * @module
 */

export {
  type ImageInput,
  type LoadedImage,
  loadImage,
  type LoadImageOptions,
  type LoadProgress,
} from "./load.ts";
export {
  findImage,
  type ImageInfo,
  listImages,
  listRepository,
  type RemovedImage,
  removeImage,
  type RemoveImageOptions,
  type TaggedImage,
  tagImage,
} from "./images.ts";
export { chainIds, digestHex, digestOf, parseDigest } from "./digest.ts";
export {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  INDEX_TYPES,
  isIndex,
  MANIFEST_TYPES,
  OCI_INDEX,
  OCI_MANIFEST,
} from "./media_types.ts";
export {
  formatPlatform,
  hostPlatform,
  type ImageIndex,
  type IndexEntry,
  parsePlatform,
  type Platform,
  selectPlatform,
} from "./platform.ts";
export {
  type FreshLayer,
  type SavedImage,
  saveImage,
  type SaveImageOptions,
} from "./save.ts";
export { type PrunedImages, pruneImages } from "./prune.ts";
export { unusedImageLayers } from "./unused_layers.ts";
