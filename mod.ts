/**
 * layerfs: a container layer store ("graph driver") for Deno.
 *
 * ## Vocabulary
 * - **Layer**: a directory of file-system changes, stored as `diff/<id>` under the store root.
 * - **Id**: a layer's name, `^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`, never ending in `-removing`.
 * - **Parent chain**: the layers a layer sits on, nearest first, kept in `layers/<id>`
 *   (Docker's aufs layout). A layer without a parent is a base layer.
 * - **Read-only layer**: an image layer, made by `create`, `applyDiff` or `commit`; it never
 *   changes, and only read-only layers can be parents.
 *   **Read-write layer**: a container's writable layer, made by `createReadWrite`.
 * - **Commit**: `commit(id, newId)` turns read-write layer `id` into read-only layer `newId`
 *   (same parents and content, renamed in O(1)); `id` is gone afterwards.
 * - **Backend**: how a chain becomes one root filesystem: kernel `overlay` (default), `aufs`
 *   (where the kernel has it), or `vfs` (full copies, no privileges needed).
 * - **View**: the union of a layer and its parents, as one directory tree. A read-only
 *   layer's view is read-only (on `vfs`, which mounts nothing, this cannot be enforced).
 * - **get / put**: `get` mounts the view of a layer (once, however many callers; counts are
 *   shared across processes) and returns its path; `put` releases one reference and the last
 *   one unmounts.
 * - **diff / applyDiff**: `diff` streams a layer's own changes as an uncompressed OCI layer
 *   tar; `applyDiff` makes a new read-only layer from such a tar (gzip- and zstd-compressed
 *   tars are accepted), or fails with `LayerExists`: it never changes an existing layer.
 *   OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`) are converted to and from the backend's form.
 *
 * ## Import a layer, then run a container on it
 * As root, with the overlay backend (so not run as a test):
 * ```ts ignore
 * import { openStore } from "@layerfs/layerfs";
 *
 * const store = await openStore({ root: "/var/lib/layerfs", backend: "auto" });
 * const tar = (await Deno.open("base.tar")).readable;
 * await store.applyDiff("base", undefined, tar);           // import an image layer
 * await store.createReadWrite("ctr1", "base");             // a container's writable layer
 * const rootfs = await store.get("ctr1");                  // mount the union view
 * console.log(await Array.fromAsync(Deno.readDir(rootfs)));
 * await store.put("ctr1");                                 // unmount on the last put
 * for (const c of await store.changes("ctr1")) console.log(c.kind, c.path);
 * store.close();
 * ```
 *
 * ## The same on vfs, without privileges
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerExists, openStore } from "./mod.ts";
 *
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await store.createReadWrite("build");                    // make an image layer's content
 * await Deno.writeTextFile(`${await store.get("build")}/hello`, "hi\n");
 * await store.put("build");
 * const tar = await new Response(store.diff("build")).bytes(); // an OCI layer tar
 *
 * await store.applyDiff("base", undefined, tar);           // import it as an image layer
 * await assert.rejects(store.applyDiff("base", undefined, tar), LayerExists);
 * await store.createReadWrite("ctr1", "base");             // a container's writable layer
 * const rootfs = await store.get("ctr1");                  // its view: base + ctr1
 * assert.equal(await Deno.readTextFile(`${rootfs}/hello`), "hi\n");
 * await Deno.writeTextFile(`${rootfs}/app.log`, "started\n");
 * await store.put("ctr1");
 * assert.deepEqual(await store.changes("ctr1"), [{ path: "/app.log", kind: "add" }]);
 * await store.commit("ctr1", "app");                       // now an image layer on base
 * assert.deepEqual(await store.parents("app"), ["base"]);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @module
 */

export * from "./src/errors.ts";
// The store and mounting load on first call (src/store/lazy.ts,
// src/mount/lazy.ts): a tool that imports mod.ts to apply or pack a tar does
// not load them at start-up. `Store` is exported as a type: get one from
// `openStore`.
export type {
  CreateOptions,
  GetOptions,
  LayerInfo,
  LayerUsage,
  OpenStoreOptions,
  RemoveOptions,
  StagedLayer,
  Store,
  Usage,
} from "./src/store/mod.ts";
export { validateLayerId } from "./src/store/id.ts";
export { openStore, planLayerMount } from "./src/store/lazy.ts";
export type { BackendName } from "./src/backends/registry.ts";
export type {
  ArchiveProgress,
  Change,
  TarSource,
  WhiteoutFormat,
} from "./src/archive/layer.ts";
export { packDir, type PackDirOptions } from "./src/archive/export/pack_dir.ts";
export { type ByteWriter, writeToFile } from "./src/archive/write_file.ts";
export {
  applyTar,
  type ApplyTarOptions,
  type ExtractFormat,
} from "./src/archive/extract/apply_tar.ts";
export { helperMounter } from "./src/mount/helper_mounter.ts";
export { directMounter, performMountPlan } from "./src/mount/lazy.ts";
export type {
  Mounter,
  OverlayDirFds,
  PerformOptions,
} from "./src/mount/mod.ts";
export type {
  AufsMountPlan,
  BindMountPlan,
  MountCall,
  MountPlan,
  NoMountPlan,
  OverlayMountPlan,
} from "./src/mount/mod.ts";
// The tar codec's parts one by one, not through src/archive/tar/mod.ts,
// which also exports the header encoder: TarWriter loads it on its first
// `add`, packDir on its first read.
export {
  type EntryType,
  type TarHeader,
  tarHeader,
  type TarHeaderInit,
  TypeFlag,
} from "./src/archive/tar/header.ts";
export {
  readTar,
  type TarEntry,
  type TarInput,
  TarReader,
  type TarReaderOptions,
} from "./src/archive/tar/reader.ts";
export { TarWriter, type TarWriterOptions } from "./src/archive/tar/writer.ts";
// Decompression loads on first use (src/archive/compress/lazy.ts): the
// gunzip and zstd decoders are not loaded by a tool that applies plain tars.
export {
  type Compression,
  detectCompression,
  type DetectedCompression,
  MAGIC_LENGTH,
} from "./src/archive/compress/detect.ts";
export type {
  Decompressed,
  DecompressOptions,
} from "./src/archive/compress/decompress.ts";
export type { DecompressedSource } from "./src/archive/compress/tar_source.ts";
export {
  compressor,
  writeCompressed,
} from "./src/archive/compress/compress.ts";
export {
  decompress,
  decompressStream,
  decompressTarSource,
  peekCompression,
} from "./src/archive/compress/lazy.ts";
export { ignoreFileSizeSignal } from "./src/sys/signal_linux.ts";
// Registry and images: the pure helpers and RegistryClient statically, the
// async entry points through src/*/lazy.ts, which load their
// implementation on first call (a tool that only applies tars does not pay
// to load image and registry code at start-up). Keep these lists in step
// with src/registry/mod.ts and src/image/mod.ts (tests/startup_test.ts
// checks that mod.ts exports every name they do).
export {
  DOCKER_HUB,
  hostname,
  parseReference,
  type Reference,
  referenceOf,
} from "./src/image/reference.ts";
export {
  type AuthFileEnv,
  authFilePath,
  authFilesToRead,
  type Credentials,
  readCredentials,
  removeCredentials,
  storeCredentials,
} from "./src/registry/auth_file.ts";
export {
  DEFAULT_CERTS_DIRS,
  isLoopback,
  plainHttpAllowed,
  registryCaCerts,
} from "./src/registry/tls.ts";
export {
  type BlobSource,
  type CallOptions,
  type Manifest,
  type ManifestHead,
  MAX_MANIFEST_SIZE,
  type PushBlobOptions,
  type PushBlobResult,
  RegistryClient,
  type RegistryClientOptions,
  type Repository,
} from "./src/registry/client.ts";
export type { PulledImage, PullImageOptions } from "./src/registry/pull.ts";
export type {
  PushedBlob,
  PushedImage,
  PushImageOptions,
  PushProgress,
} from "./src/registry/push.ts";
export { pullImage, pushImage } from "./src/registry/lazy.ts";
export type {
  ImageInput,
  LoadedImage,
  LoadImageOptions,
  LoadProgress,
} from "./src/image/load.ts";
export type {
  ImageInfo,
  RemovedImage,
  RemoveImageOptions,
  TaggedImage,
} from "./src/image/images.ts";
export {
  chainIds,
  digestHex,
  digestOf,
  parseDigest,
} from "./src/image/digest.ts";
export {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  INDEX_TYPES,
  isIndex,
  MANIFEST_TYPES,
  OCI_INDEX,
  OCI_MANIFEST,
} from "./src/image/media_types.ts";
export {
  formatPlatform,
  hostPlatform,
  type ImageIndex,
  type IndexEntry,
  parsePlatform,
  type Platform,
  selectPlatform,
} from "./src/image/platform.ts";
export type {
  FreshLayer,
  SavedImage,
  SaveImageOptions,
} from "./src/image/save.ts";
export type { PrunedImages } from "./src/image/prune.ts";
export { unusedImageLayers } from "./src/image/unused_layers.ts";
export {
  findImage,
  listImages,
  listRepository,
  loadImage,
  pruneImages,
  removeImage,
  saveImage,
  tagImage,
} from "./src/image/lazy.ts";
