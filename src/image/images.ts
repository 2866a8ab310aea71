/**
 * Listing and removing images, and looking one up by reference.
 *
 * @module
 */

import { ImageInUse, LayerfsError, LayerNotFound } from "../errors.ts";
import type { Store } from "../store/store.ts";
import { parseManifest } from "./_formats.ts";
import { nameCandidates } from "./reference.ts";
import {
  anyLayerBusy,
  checkTag,
  flock,
  forgetReleased,
  getBlob,
  type ImageIndex,
  type ImageRecord,
  imagesDir,
  readIndex,
  resolveName,
  resolveRef,
  withImagesLock,
  withTag,
  writeIndex,
} from "./image_store.ts";

/** One row of {@link listImages}: an image under one of its names. */
export interface ImageInfo {
  /** `name:tag`, or null for an image without a name. */
  ref: string | null;
  /** Image id, `sha256:<config digest>`. */
  id: string;
  /** Manifest digest, when the archive had a manifest. */
  manifest: string | null;
  /** Chain id of the top layer, or null for an image without layers. */
  topLayer: string | null;
  /** Chain ids, bottom first. */
  layers: string[];
  /** Uncompressed bytes of its layer tars. */
  size: number;
  /** The config's `created` (ISO 8601), or null. */
  created: string | null;
}

function rows(idx: ImageIndex): ImageInfo[] {
  const out: ImageInfo[] = [];
  const named = new Set<string>();
  const info = (hex: string, ref: string | null): ImageInfo => {
    const r = idx.images[hex];
    return {
      ref,
      id: r.id,
      manifest: r.manifest,
      topLayer: r.layers.at(-1) ?? null,
      layers: r.layers,
      size: r.size,
      created: r.created,
    };
  };
  for (const [ref, hex] of Object.entries(idx.refs).sort()) {
    if (!idx.images[hex]) continue;
    named.add(hex);
    out.push(info(hex, ref));
  }
  for (const hex of Object.keys(idx.images).sort()) {
    if (!named.has(hex)) out.push(info(hex, null));
  }
  return out;
}

/**
 * Every image, one row per name (sorted), then the images without a name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore } from "../../mod.ts";
 * import { listImages } from "./mod.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * assert.deepEqual(await listImages(store), []);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function listImages(store: Store): Promise<ImageInfo[]> {
  return rows(await readIndex(store));
}

/**
 * Every name of the repository `name` (a name without a tag or digest: as
 * `docker images REPO`), one row each, sorted; none when `name` has a tag
 * or digest, or no stored name is in that repository. A short name finds
 * its repository as {@link findImage} finds a name: docker's reading
 * (`alpine` is `docker.io/library/alpine`), else podman's local one
 * (`localhost/alpine`), the first that has a name stored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { openStore } from "../../mod.ts";
 * import { listRepository, loadImage } from "./mod.ts";
 *
 * const config = JSON.stringify({ os: "linux", architecture: "amd64", rootfs: { type: "layers", diff_ids: [] } });
 * const id = createHash("sha256").update(config).digest("hex");
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/${id}.json`, config);
 * await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify([{ Config: `${id}.json`, RepoTags: ["test/app:1", "test/app:2", "other:1"], Layers: [] }]));
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await loadImage(store, dir);
 * assert.deepEqual((await listRepository(store, "test/app")).map((r) => r.ref), ["test/app:1", "test/app:2"]);
 * assert.deepEqual(await listRepository(store, "test/app:1"), []);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function listRepository(
  store: Store,
  name: string,
): Promise<ImageInfo[]> {
  if (
    name.includes("@") || name.slice(name.lastIndexOf("/") + 1).includes(":")
  ) {
    return [];
  }
  // nameCandidates' names always carry a tag: the repository is before it.
  const repo = (full: string) => full.slice(0, full.lastIndexOf(":"));
  const want = nameCandidates(name)?.map(repo) ?? [];
  const named = rows(await readIndex(store)).flatMap((r) =>
    r.ref === null
      ? []
      : [{ r, repos: (nameCandidates(r.ref) ?? []).map(repo) }]
  );
  for (const key of want) {
    const hits = named.filter((x) => x.repos.includes(key)).map((x) => x.r);
    if (hits.length) return hits;
  }
  return [];
}

/**
 * The image `ref` names: `name:tag` (`name` alone means `name:latest`),
 * `sha256:<id>`, an id prefix of at least 12 hex chars, or a manifest digest
 * (`sha256:<manifest>`, `name@sha256:<manifest>`).
 *
 * @throws {ImageNotFound}
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { openStore } from "../../mod.ts";
 * import { findImage, listImages, loadImage, removeImage, saveImage } from "./mod.ts";
 *
 * // An image without layers, as an extracted docker-archive directory.
 * const config = JSON.stringify({ os: "linux", architecture: "amd64", rootfs: { type: "layers", diff_ids: [] } });
 * const id = createHash("sha256").update(config).digest("hex");
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/${id}.json`, config);
 * await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify([{ Config: `${id}.json`, RepoTags: ["empty:1", "empty:2"], Layers: [] }]));
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await loadImage(store, dir);
 * const img = await findImage(store, "empty:2");
 * assert.equal(img.id, `sha256:${id}`);
 * assert.equal(img.ref, "empty:2");
 * assert.equal((await findImage(store, id.slice(0, 12))).id, img.id);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function findImage(store: Store, ref: string): Promise<ImageInfo> {
  const idx = await readIndex(store);
  const hex = resolveRef(idx, ref);
  const name = resolveName(idx, ref);
  const all = rows(idx).filter((r) => r.id === `sha256:${hex}`);
  return all.find((r) => r.ref === name) ?? all[0];
}

/** What {@link tagImage} did. */
export interface TaggedImage {
  /** The name given, as stored (`name:tag`, `:latest` added when it had no tag). */
  ref: string;
  /** The image it names now, `sha256:<config digest>`. */
  id: string;
  /** The image the name was taken from, when it named another one before (docker moves a tag). */
  movedFrom: string | null;
}

/**
 * Gives the image `ref` names (a name, an id or a prefix, as {@link
 * findImage} takes) the name `name` too, as `docker tag` does. A name another
 * image had moves to this one (that image keeps its other names, or is left
 * without one: `layerfs images` shows it as <none>).
 *
 * @throws {ImageNotFound} {InvalidReference} (`name` is no image name, or has a digest)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { openStore } from "../../mod.ts";
 * import { findImage, loadImage, tagImage } from "./mod.ts";
 * const config = JSON.stringify({ os: "linux", architecture: "amd64", rootfs: { type: "layers", diff_ids: [] } });
 * const id = createHash("sha256").update(config).digest("hex");
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/${id}.json`, config);
 * await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify([{ Config: `${id}.json`, RepoTags: ["app:1"], Layers: [] }]));
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await loadImage(store, dir);
 * const t = await tagImage(store, "app:1", "registry.test/app");
 * assert.deepEqual(t, { ref: "registry.test/app:latest", id: `sha256:${id}`, movedFrom: null });
 * assert.equal((await findImage(store, "registry.test/app:latest")).id, `sha256:${id}`);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function tagImage(
  store: Store,
  ref: string,
  name: string,
): Promise<TaggedImage> {
  checkTag(name);
  const tag = withTag(name);
  return await withImagesLock(store, async () => {
    const idx = await readIndex(store);
    const hex = resolveRef(idx, ref);
    const before = idx.refs[tag];
    idx.refs[tag] = hex;
    if (before !== hex) await writeIndex(store, idx);
    return {
      ref: tag,
      id: `sha256:${hex}`,
      movedFrom: before !== undefined && before !== hex
        ? `sha256:${before}`
        : null,
    };
  });
}

/** Options of {@link removeImage}. */
export interface RemoveImageOptions {
  /**
   * Remove the image even when layers no image names (containers) are
   * built on it: its record and names go, and its layers stay as long as
   * something uses them.
   * @default {false}
   */
  force?: boolean;
}

/**
 * The layers no image names whose parent is one of the image `hex`'s own
 * layers (those no other image names: a container on a layer another image
 * shares depends on that image, not this one), sorted; unused image layers
 * a load or pull left (`imageLayer`) do not count: prune takes them.
 */
async function layersBuiltOn(
  store: Store,
  idx: ImageIndex,
  hex: string,
): Promise<string[]> {
  const others = new Set(
    Object.entries(idx.images).flatMap(([h, r]) => h === hex ? [] : r.layers),
  );
  const mine = new Set(idx.images[hex].layers.filter((l) => !others.has(l)));
  const named = new Set(Object.values(idx.images).flatMap((r) => r.layers));
  return (await store.list())
    .filter((l) =>
      l.parent !== undefined && mine.has(l.parent) && !named.has(l.id) &&
      !l.imageLayer
    )
    .map((l) => l.id)
    .sort();
}

/** What {@link removeImage} did. */
export interface RemovedImage {
  /** Names taken away. */
  untagged: string[];
  /** The image id deleted, or null when only a name went (the image has others). */
  deleted: string | null;
  /** Layers removed (top first): those no other image, layer or mount uses. */
  removedLayers: string[];
}

/**
 * Removes a name, or an image. `name:tag` takes that name away; when it was
 * the image's last name, or `ref` is an id, the image goes with all its
 * names, its config and manifest and the layer blobs a pull kept for it
 * (`keepBlobs`) that no other image uses (left to `pruneImages` while a
 * load or pull is running), and then its layers, top first,
 * that no other image uses, no layer sits on and nothing has mounted (those
 * stay, and so do the layers below them). An image with a container on it
 * (a layer no image names, built on one of its layers) is refused with
 * `ImageInUse`, as docker and podman refuse it, unless `options.force`.
 * The layers that stay are recorded as released (`ImageIndex.released`):
 * `check` does not take them for an interrupted load's, `pruneImages`
 * removes them once nothing uses them, a load of an image reuses them.
 *
 * @throws {ImageNotFound} {ImageInUse}
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { openStore } from "../../mod.ts";
 * import { findImage, listImages, loadImage, removeImage, saveImage } from "./mod.ts";
 *
 * // An image without layers, as an extracted docker-archive directory.
 * const config = JSON.stringify({ os: "linux", architecture: "amd64", rootfs: { type: "layers", diff_ids: [] } });
 * const id = createHash("sha256").update(config).digest("hex");
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/${id}.json`, config);
 * await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify([{ Config: `${id}.json`, RepoTags: ["empty:1", "empty:2"], Layers: [] }]));
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await loadImage(store, dir);
 * assert.deepEqual(await removeImage(store, "empty:1"), { untagged: ["empty:1"], deleted: null, removedLayers: [] });
 * const last = await removeImage(store, "empty:2");
 * assert.equal(last.deleted, `sha256:${id}`);
 * assert.deepEqual(await listImages(store), []);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function removeImage(
  store: Store,
  ref: string,
  options: RemoveImageOptions = {},
): Promise<RemovedImage> {
  const plan = await withImagesLock(store, async () => {
    const idx = await readIndex(store);
    const hex = resolveRef(idx, ref);
    const names = Object.keys(idx.refs).filter((r) => idx.refs[r] === hex);
    const byTag = resolveName(idx, ref);
    if (byTag !== undefined && names.length > 1) {
      delete idx.refs[byTag];
      await writeIndex(store, idx);
      return { untagged: [byTag], deleted: null, layers: [] as string[] };
    }
    const rec = idx.images[hex];
    if (!options.force) {
      const users = await layersBuiltOn(store, idx, hex);
      if (users.length) throw new ImageInUse(ref, users);
    }
    const mine = await blobsOf(store, rec);
    for (const n of names) delete idx.refs[n];
    delete idx.images[hex];
    // Its own layers are released in the same write: those that stay (a
    // container, a mount or a layer on them) are then known for what they
    // are, not taken for what an interrupted load left (`check`), also if
    // this process dies before it removes them.
    const named = new Set(Object.values(idx.images).flatMap((r) => r.layers));
    for (const l of rec.layers) {
      if (!named.has(l)) (idx.released ??= {})[l] = rec.id;
    }
    await writeIndex(store, idx);
    // Blobs no image uses any more: its config, its manifest and the layer
    // blobs a pull kept (`keepBlobs`) that no other image's manifest names.
    // Not while a load or pull holds a layer lock: it may have put one of
    // them in place and not yet written the references that make it used
    // (prune removes them later, as it does what interrupted pulls keep).
    if (await anyLayerBusy(store)) {
      return { untagged: names, deleted: rec.id, layers: [...rec.layers] };
    }
    const used = new Set<string>();
    for (const r of Object.values(idx.images)) {
      for (const b of await blobsOf(store, r)) used.add(b);
    }
    for (const b of mine) {
      if (used.has(b)) continue;
      await Deno.remove(`${imagesDir(store)}/blobs/sha256/${b}`).catch(
        () => {},
      );
    }
    return { untagged: names, deleted: rec.id, layers: [...rec.layers] };
  });
  const removedLayers: string[] = [];
  const gone: string[] = [];
  // Under the layer's lock, as loadImage holds it while it reuses a layer:
  // a load of an image with this layer finishes (its index names the layer,
  // and the store refuses it) or starts after the layer went.
  for (const id of plan.layers.reverse()) {
    const lock = await flock(`${imagesDir(store)}/locks/${id}`);
    try {
      await store.remove(id);
      removedLayers.push(id);
      gone.push(id);
    } catch (e) {
      if (e instanceof LayerNotFound) {
        gone.push(id);
        continue;
      }
      // Another image uses it, or a child or a mount: everything below it
      // is its parent chain, and stays.
      if (e instanceof LayerfsError) break;
      throw e;
    } finally {
      lock.close();
    }
  }
  if (gone.length) await forgetReleased(store, gone);
  return { untagged: plan.untagged, deleted: plan.deleted, removedLayers };
}

/**
 * The blobs of `images/blobs/sha256/` an image uses (hex): its config, its
 * manifest, and the layer blobs its manifest names (present when a pull
 * kept them).
 */
export async function blobsOf(store: Store, r: ImageRecord): Promise<string[]> {
  const out = [r.id.slice(7)];
  if (!r.manifest) return out;
  out.push(r.manifest.slice(7));
  const bytes = await getBlob(store, r.manifest.slice(7));
  if (!bytes) return out;
  try {
    out.push(...parseManifest(bytes, r.id).layers.map((l) => l.digest));
  } catch { /* not an image manifest: only what the record names */ }
  return out;
}

/** Internal, for the CLI's `rm`: see `image_store.ts`. */
export { forgetReleased };
