/**
 * The image index's file and shape (`<root>/images/index.json`), and which
 * layers its images use. It lives at the top of `src/`, as `layout.ts`
 * does, because two packages read it: the image store (`src/image/`),
 * which writes it, and the layer store, whose `remove` refuses a layer an
 * image uses (`src/store/_remove.ts`). The store reads it; it never
 * imports the image code (which imports the store).
 *
 * @module
 */

import { StoreError } from "./errors.ts";

/** One image of the store. */
export interface ImageRecord {
  /** Image id: the config's digest, `sha256:<hex>`. */
  id: string;
  /** Digest of the manifest, when the archive had one (OCI layouts, Docker 25+). */
  manifest: string | null;
  /** Layer ids (chain ids, 64 hex), bottom first. */
  layers: string[];
  /** The config's `rootfs.diff_ids`, bottom first. */
  diffIds: string[];
  /** Uncompressed bytes of each layer tar, bottom first. */
  layerSizes: number[];
  /** Uncompressed bytes of all layer tars. */
  size: number;
  /** The config's `created`, or null. */
  created: string | null;
  /** When it was loaded (ISO 8601). */
  loaded: string;
  /**
   * Repositories (`host/repository`) it was pulled from or pushed to: a
   * push to the same registry mounts blobs from them instead of uploading.
   */
  sources?: string[];
  /**
   * Layer blobs this store made and pushed, by `<chain id> <compression>`:
   * a later push finds them in the registry by digest without exporting.
   */
  pushed?: Record<
    string,
    { digest: string; size: number; mediaType: string; diffId: string }
  >;
}

/** The index file's shape. */
export interface ImageIndex {
  /** Format version (1). */
  version: 1;
  /** Images by id hex. */
  images: Record<string, ImageRecord>;
  /** References (`name:tag`) to id hex. */
  refs: Record<string, string>;
  /**
   * Layers of removed images that stayed because something still used them
   * (a container on them, a mount), by chain id, with the id of the image
   * they were removed with. No image uses them, but no interrupted load or
   * pull left them either: `check` does not report them, `prune` removes
   * them once nothing uses them. An entry goes when an image names the
   * layer again or the layer is removed.
   */
  released?: Record<string, string>;
}

/** The path of the image index of the store at `root`. */
export function imageIndexPath(root: string): string {
  return `${root}/images/index.json`;
}

/**
 * Reads the image index of the store at `root` (an empty index when there
 * is none).
 *
 * @throws {StoreError} the file is not a valid index.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readImageIndex } from "./image_index.ts";
 * const root = await Deno.makeTempDir();
 * assert.deepEqual(await readImageIndex(root), { version: 1, images: {}, refs: {} });
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function readImageIndex(root: string): Promise<ImageIndex> {
  const path = imageIndexPath(root);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return { version: 1, images: {}, refs: {} };
    }
    throw e;
  }
  try {
    const idx = JSON.parse(text) as ImageIndex;
    if (idx.version !== 1 || typeof idx.images !== "object") throw 0;
    return idx;
  } catch (e) {
    throw new StoreError(
      `The image index ${path} is not valid; restore it from a backup or remove it (the layers stay)`,
      { cause: e },
    );
  }
}

/** An image that uses a layer, as {@link imagesUsing} names it. */
export interface LayerUser {
  /** The layer. */
  layer: string;
  /**
   * The images that use it, each by what `rmi` takes to remove it: its
   * names (removing all of them removes the image), or `sha256:<id>` when
   * it has none.
   */
  images: string[][];
}

/**
 * The layers of `layers` that images of `idx` use, with those images, in
 * the order of `layers`. Pure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { imagesUsing } from "./image_index.ts";
 * const rec = (id: string, layers: string[]) => ({
 *   id, manifest: null, layers, diffIds: [], layerSizes: [], size: 0, created: null, loaded: "",
 * });
 * const idx = {
 *   version: 1 as const,
 *   images: { aa: rec("sha256:aa", ["l1", "l2"]), bb: rec("sha256:bb", ["l1"]) },
 *   refs: { "app:1": "aa", "app:latest": "aa" },
 * };
 * assert.deepEqual(imagesUsing(idx, ["l2", "l1", "l3"]), [
 *   { layer: "l2", images: [["app:1", "app:latest"]] },
 *   { layer: "l1", images: [["app:1", "app:latest"], ["sha256:bb"]] },
 * ]);
 * ```
 */
export function imagesUsing(
  idx: ImageIndex,
  layers: Iterable<string>,
): LayerUser[] {
  const names = new Map<string, string[]>();
  for (const [ref, hex] of Object.entries(idx.refs).sort()) {
    names.set(hex, [...(names.get(hex) ?? []), ref]);
  }
  const out: LayerUser[] = [];
  for (const layer of layers) {
    const images = Object.entries(idx.images)
      .filter(([, r]) => r.layers.includes(layer))
      .sort(([a], [b]) => a < b ? -1 : 1)
      .map(([hex, r]) => names.get(hex) ?? [r.id]);
    if (images.length) out.push({ layer, images });
  }
  return out;
}
