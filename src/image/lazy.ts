/**
 * The image entry points as `mod.ts` exports them, each loading its
 * implementation on first call.
 *
 * Why: what a process loads before its first line runs costs it at every
 * start (README "Start-up": ~27 ms per MB of emitted module code on the
 * 2-core VM). `load.ts`, `save.ts` and `images.ts` bring ~0.46 MB of image
 * and archive code with them, which a tool that imports `mod.ts` to apply
 * one tar never runs. These functions are async anyway, so the `import()`
 * changes nothing for callers. The full documentation (inputs,
 * verification, errors) stays with each implementation.
 *
 * @module
 */

import type { Store } from "../store/store.ts";
import type {
  ImageInfo,
  RemovedImage,
  RemoveImageOptions,
  TaggedImage,
} from "./images.ts";
import type { ImageInput, LoadedImage, LoadImageOptions } from "./load.ts";
import type { PrunedImages } from "./prune.ts";
import type { SavedImage, SaveImageOptions } from "./save.ts";
import { loadModule } from "../_load_module.ts";

const loadImpl = () =>
  loadModule<typeof import("./load.ts")>(
    new URL("./load.ts", import.meta.url),
  );
const imagesImpl = () =>
  loadModule<typeof import("./images.ts")>(
    new URL("./images.ts", import.meta.url),
  );
const pruneImpl = () =>
  loadModule<typeof import("./prune.ts")>(
    new URL("./prune.ts", import.meta.url),
  );
const saveImpl = () =>
  loadModule<typeof import("./save.ts")>(
    new URL("./save.ts", import.meta.url),
  );

/**
 * Loads `docker save` output or an OCI image layout into `store` (see
 * `src/image/load.ts` for the formats, verification and ids).
 *
 * @param store An open store.
 * @param source A path (tar file or layout dir) or a tar stream.
 * @param options Platform, tag, progress.
 * @returns The images loaded, in archive order.
 * @throws {InvalidImage} malformed input, missing blobs, digest mismatches.
 * @throws {ForeignLayer} {NoMatchingPlatform} {UsageError}
 *
 * @example A directory that is no image is refused
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidImage, loadImage, openStore } from "../../mod.ts";
 *
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * const empty = await Deno.makeTempDir();
 * await assert.rejects(loadImage(store, empty), InvalidImage);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * await Deno.remove(empty);
 * ```
 */
export async function loadImage(
  store: Store,
  source: ImageInput,
  options?: LoadImageOptions,
): Promise<LoadedImage[]> {
  return (await loadImpl()).loadImage(store, source, options);
}

/**
 * Every image of `store`, one row per name (sorted), then the images
 * without a name (see `src/image/images.ts`).
 *
 * @param store An open store.
 * @returns The rows.
 *
 * @example A new store has none
 * ```ts
 * import assert from "node:assert/strict";
 * import { listImages, openStore } from "../../mod.ts";
 *
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * assert.deepEqual(await listImages(store), []);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function listImages(store: Store): Promise<ImageInfo[]> {
  return (await imagesImpl()).listImages(store);
}

/**
 * The image `ref` names (`name:tag`, `name` for `:latest`, `sha256:<id>` or
 * an id prefix); see `src/image/images.ts`.
 *
 * @param store An open store.
 * @param ref The name or id.
 * @returns Its row.
 * @throws {ImageNotFound} when no image has that name or id.
 *
 * @example An unknown name
 * ```ts
 * import assert from "node:assert/strict";
 * import { findImage, ImageNotFound, openStore } from "../../mod.ts";
 *
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await assert.rejects(findImage(store, "app:1"), ImageNotFound);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function findImage(store: Store, ref: string): Promise<ImageInfo> {
  return (await imagesImpl()).findImage(store, ref);
}

/**
 * Gives an image another name, as `docker tag` does; see
 * `src/image/images.ts`.
 *
 * @param store An open store.
 * @param ref The image: a name, an id or an id prefix.
 * @param name The name to give it (`:latest` when it has no tag).
 * @returns The name as stored, the image id, and the image the name moved from.
 * @throws {ImageNotFound} {InvalidReference}
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ImageNotFound, openStore, tagImage } from "../../mod.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await assert.rejects(tagImage(store, "app:1", "app:2"), ImageNotFound);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function tagImage(
  store: Store,
  ref: string,
  name: string,
): Promise<TaggedImage> {
  return (await imagesImpl()).tagImage(store, ref, name);
}

/**
 * Every name of the repository `name` (no tag, no digest), as
 * `docker images REPO` lists it; see `src/image/images.ts`.
 *
 * @param store An open store.
 * @param name A repository name (`alpine`, `test/app`).
 * @returns Its rows, sorted; none when `name` has a tag or digest or no
 *   name of that repository is stored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listRepository, openStore } from "../../mod.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * assert.deepEqual(await listRepository(store, "test/app"), []);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function listRepository(
  store: Store,
  name: string,
): Promise<ImageInfo[]> {
  return (await imagesImpl()).listRepository(store, name);
}

/**
 * Untags `ref`, or removes the image and the layers nothing else uses (as
 * `layerfs rmi`; see `src/image/images.ts`).
 *
 * @param store An open store.
 * @param ref The name or id.
 * @param options `force`: remove it even when a container is built on it.
 * @returns What was untagged and removed.
 * @throws {ImageNotFound} when no image has that name or id.
 * @throws {ImageInUse} a layer no image names (a container) is built on it.
 *
 * @example An unknown name
 * ```ts
 * import assert from "node:assert/strict";
 * import { ImageNotFound, openStore, removeImage } from "../../mod.ts";
 *
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await assert.rejects(removeImage(store, "app:1"), ImageNotFound);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function removeImage(
  store: Store,
  ref: string,
  options: RemoveImageOptions = {},
): Promise<RemovedImage> {
  return (await imagesImpl()).removeImage(store, ref, options);
}

/**
 * Removes the image layers no image names, no layer sits on and nothing has
 * mounted, and the blobs pulls kept that no image uses (as `layerfs prune`;
 * see `src/image/prune.ts`).
 *
 * @param store An open store.
 * @returns What was removed, and what was left because a load or pull is
 *   working on it.
 *
 * @example A new store has nothing to prune
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore, pruneImages } from "../../mod.ts";
 *
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * const r = await pruneImages(store);
 * assert.deepEqual(r.removedLayers, []);
 * assert.deepEqual(r.removedBlobs, []);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function pruneImages(store: Store): Promise<PrunedImages> {
  return (await pruneImpl()).pruneImages(store);
}

/**
 * Writes the images `refs` name to a docker-archive or oci-archive tar at
 * `path` (temp, fsync, rename; see `src/image/save.ts`).
 *
 * @param store An open store.
 * @param refs The images to save.
 * @param path The archive to write.
 * @param options The format.
 * @returns What was saved, in `refs` order.
 * @throws {ImageNotFound} {UsageError} (no refs) {StoreError}
 *
 * @example Nothing named is a usage error
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore, saveImage, UsageError } from "../../mod.ts";
 *
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await assert.rejects(saveImage(store, [], `${root}/out.tar`), UsageError);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function saveImage(
  store: Store,
  refs: string[],
  path: string,
  options?: SaveImageOptions,
): Promise<SavedImage[]> {
  return (await saveImpl()).saveImage(store, refs, path, options);
}

/**
 * Internal (the CLI's `rm`): drops the `released` entries of layers that are
 * gone, so a layer made again under the same id is not taken for one a
 * removed image left (see `image_store.ts`).
 *
 * @param store An open store.
 * @param gone Ids of layers just removed.
 */
export async function forgetReleased(
  store: Store,
  gone: readonly string[],
): Promise<void> {
  return (await imagesImpl()).forgetReleased(store, gone);
}
