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
  type RemovedImage,
  removeImage,
} from "./images.ts";
export { chainIds, digestHex } from "./digest.ts";
export { type SavedImage, saveImage, type SaveImageOptions } from "./save.ts";
