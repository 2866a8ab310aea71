/**
 * `saveImage`: images of the store out as a docker-archive or an
 * oci-archive. Each layer is first rebuilt byte for byte from the tar-split
 * record kept when it was loaded (`Store.exactDiff`), into a temp file, and
 * kept only when the rebuilt tar's sha256 equals the DiffID the image
 * records. When every layer is exact the config is written as loaded, so
 * the saved image has the same id.
 *
 * A layer without a record, or one that changed since (a file edited in
 * its diff dir), is exported afresh through `Store.diff` (the layer's own
 * changes as an OCI layer tar, whiteouts included). A fresh export is not
 * the tar the image was loaded from (entry order, PAX records and padding
 * differ), so its DiffID differs: the config is written with the new
 * `rootfs.diff_ids`, which gives the saved image a new id, and the result
 * says which layers and why ({@link SavedImage.fresh}).
 *
 * Layer blobs are uncompressed unless `compress` asks for gzip or zstd:
 * then the blobs get new digests, but DiffIDs, and so the image id, stay.
 *
 * @module
 */

import { nodeCrypto } from "../_node.ts";
import { LayerNotExact, StoreError, UsageError } from "../errors.ts";
import { writeCompressed } from "../archive/compress/mod.ts";
import { tarHeader } from "../archive/tar/header.ts";
import { TarWriter } from "../archive/tar/writer.ts";
import { writeToFile } from "../archive/write_file.ts";
import { openOutput, type Output } from "../_output_file.ts";
import { namedFsError } from "../_fs_error.ts";
import type { Store } from "../store/store.ts";
import { sha256Hex } from "./digest.ts";
import { abortable } from "./_abort.ts";
import {
  ensureDirs,
  getBlob,
  imagesDir,
  readIndex,
  resolveName,
  resolveRef,
  sweepImageTemps,
} from "./image_store.ts";

/** Options of {@link saveImage}. */
export interface SaveImageOptions {
  /**
   * "docker": a classic docker-archive (`manifest.json`, `<id>/layer.tar`,
   * `repositories`) that `docker load` and `podman load` read;
   * "oci": an oci-archive (a tar of an OCI image layout; podman and skopeo
   * read one image per oci-archive, so save several images to several files,
   * or as "docker").
   * @default {"docker"}
   */
  format?: "docker" | "oci";
  /**
   * Compression of the layer blobs: "none", "gzip" or "zstd". Compressed
   * blobs have new digests; the DiffIDs and the image id do not change.
   * @default {"none"}
   */
  compress?: "none" | "gzip" | "zstd";
  /** Stops the save: nothing is written under `path`, no temp file is left. */
  signal?: AbortSignal;
}

/** A layer {@link saveImage} could not export exactly, and why. */
export interface FreshLayer {
  /** The layer's chain id. */
  layer: string;
  /** Why: no record, or what differs. */
  reason: string;
  /** The DiffID of the tar exported afresh. */
  diffId: string;
  /**
   * Whether that is the DiffID the image had: the content exported afresh
   * made the very tar (the image id then stays).
   */
  sameDiffId: boolean;
}

/** One image {@link saveImage} wrote. */
export interface SavedImage {
  /** The reference it was asked for by, as saved (`name:tag`), or null for an id. */
  ref: string | null;
  /** The saved image's id (digest of the config as written). */
  id: string;
  /** The id of the image in the store (differs when the fresh DiffIDs differ). */
  storeId: string;
  /** DiffIDs of the saved layers, bottom first. */
  diffIds: string[];
  /** Its layers exported afresh (no exact rebuild), bottom first; empty when all were exact. */
  fresh: FreshLayer[];
}

interface Exported {
  /** The blob: the tar, or the compressed tar. */
  path: string;
  diffId: string;
  /** Blob size and digest (`sha256:<hex>`). */
  size: number;
  digest: string;
  /** Why it was exported afresh, or undefined when exact. */
  fresh?: string;
}

const MEDIA_TYPES = {
  none: "application/vnd.oci.image.layer.v1.tar",
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  zstd: "application/vnd.oci.image.layer.v1.tar+zstd",
} as const;

const enc = new TextEncoder();

/**
 * Writes the images `refs` name (`name:tag`, `sha256:<id>`, id prefix) to
 * the tar file `path` (written as an unnamed file, fsynced, then named:
 * a failed or killed save leaves nothing; a fifo or device is written in
 * place, a symlink followed).
 * Layers shared by several images are written once.
 *
 * @param store An open store.
 * @param refs The images to save.
 * @param path The archive to write.
 * @param options The format.
 * @returns What was saved, in `refs` order (a name given twice, once).
 * @throws {ImageNotFound} {UsageError} (no refs, `path` a directory)
 *   {StoreError} {LayerfsError} (`path` cannot be written: named, with what to do)
 *
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
 * const [saved] = await saveImage(store, ["empty:1"], `${dir}/saved.tar`, { format: "oci" });
 * assert.equal(saved.id, `sha256:${id}`); // no layers: no DiffID to change
 * const other = await openStore({ root: `${root}/other`, backend: "vfs" });
 * assert.equal((await loadImage(other, `${dir}/saved.tar`))[0].ref, "empty:1");
 * other.close();
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveImage(
  store: Store,
  refs: string[],
  path: string,
  options: SaveImageOptions = {},
): Promise<SavedImage[]> {
  if (refs.length === 0) {
    throw new UsageError("Name at least one image to save");
  }
  const format = options.format ?? "docker";
  const compress = options.compress ?? "none";
  if (!(compress in MEDIA_TYPES)) {
    throw new UsageError(
      `Unknown compression ${JSON.stringify(compress)}; use none, gzip or zstd`,
    );
  }
  const idx = await readIndex(store);
  // One manifest entry per name: `save app:2 app:2` (or `app:2 sha256:<its
  // id>` twice) names it once, as docker save does.
  const seen = new Set<string>();
  const images = refs.flatMap((ref) => {
    const hex = resolveRef(idx, ref);
    const tagged = resolveName(idx, ref) ?? null;
    const key = `${tagged ?? ""} ${hex}`;
    if (seen.has(key)) return [];
    seen.add(key);
    return [{ ref: tagged, hex, record: idx.images[hex] }];
  });
  // Opened first, so a bad path fails before any layer is exported.
  let out: Output | undefined = await openOutput(path);
  let tmp: string | undefined;
  try {
    await ensureDirs(imagesDir(store));
    await sweepImageTemps(store);
    tmp = await Deno.makeTempDir({
      dir: imagesDir(store),
      prefix: `.save-${Deno.pid}-`,
    });
    // Each layer once, to a temp file: a tar header needs its size first.
    const exported = new Map<string, Exported>();
    for (const { record } of images) {
      for (const [j, chain] of record.layers.entries()) {
        if (exported.has(chain)) continue;
        options.signal?.throwIfAborted();
        exported.set(
          chain,
          await exportLayer(
            store,
            chain,
            record.diffIds[j],
            `${tmp}/${chain}`,
            compress,
            options.signal,
          ),
        );
      }
    }
    const saved: SavedImage[] = [];
    const configs: Uint8Array[] = [];
    for (const { ref, hex, record } of images) {
      const original = await getBlob(store, hex);
      if (!original) {
        throw new StoreError(
          `The config of image sha256:${hex} is missing from ${
            imagesDir(store)
          }/blobs; load the image again`,
        );
      }
      const diffIds = record.layers.map((c) => exported.get(c)!.diffId);
      let config = original;
      if (diffIds.some((d, i) => d !== record.diffIds[i])) {
        const c = JSON.parse(new TextDecoder().decode(original));
        c.rootfs = { ...c.rootfs, type: "layers", diff_ids: diffIds };
        config = enc.encode(JSON.stringify(c));
      }
      configs.push(config);
      saved.push({
        ref,
        id: `sha256:${sha256Hex(config)}`,
        storeId: record.id,
        diffIds,
        fresh: record.layers.flatMap((c, i) => {
          const { fresh: reason, diffId } = exported.get(c)!;
          if (reason === undefined) return [];
          const sameDiffId = diffId === record.diffIds[i];
          return [{ layer: c, reason, diffId, sameDiffId }];
        }),
      });
    }
    const w = new TarWriter();
    const written = writeToFile(
      abortable(w.readable, options.signal),
      out!.file,
    ).catch((e) => {
      throw namedFsError(e, "write to", path);
    });
    written.catch(() => {});
    try {
      if (format === "docker") {
        await writeDocker(w, saved, configs, images, exported);
      } else await writeOci(w, saved, configs, images, exported, compress);
      await w.close();
    } catch (e) {
      w.abort(e);
      throw e;
    }
    await written;
    await out!.commit();
    out = undefined;
    return saved;
  } finally {
    await out?.abort();
    if (tmp) await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/**
 * One layer's blob in `path`: rebuilt exactly when the layer has a record
 * and the rebuilt tar's sha256 is `diffId`, else exported afresh; then
 * compressed when asked.
 */
async function exportLayer(
  store: Store,
  chain: string,
  diffId: string,
  path: string,
  compress: "none" | "gzip" | "zstd",
  signal: AbortSignal | undefined,
): Promise<Exported> {
  const tar = compress === "none" ? path : `${path}.tar`;
  let fresh: string | undefined = "it has no tar-split record";
  let hashed: { digest: string; size: number } | undefined;
  const exact = await store.exactDiff(chain, { sha256: diffId.slice(7) });
  if (exact) {
    try {
      // The stream errors before its last chunk unless the sha256 matched.
      hashed = await writeHashed(abortable(exact, signal), tar);
      fresh = undefined;
    } catch (e) {
      if (!(e instanceof LayerNotExact)) throw e;
      fresh = e.message.replace(
        /^Layer "[^"]*" cannot be exported exactly: /,
        "",
      )
        .replace(/; it changed since.*$/, "");
      await Deno.remove(tar).catch(() => {});
    }
  }
  signal?.throwIfAborted();
  hashed ??= await writeHashed(abortable(store.diff(chain), signal), tar);
  const out: Exported = {
    path: tar,
    diffId: `sha256:${hashed.digest}`,
    size: hashed.size,
    digest: `sha256:${hashed.digest}`,
    fresh,
  };
  if (compress !== "none") {
    const blob = await compressFile(tar, path, compress);
    await Deno.remove(tar);
    Object.assign(out, { path, ...blob });
  }
  return out;
}

/** Writes `stream` to a new file at `path`, hashing it. */
async function writeHashed(
  stream: ReadableStream<Uint8Array>,
  path: string,
): Promise<{ digest: string; size: number }> {
  const hash = nodeCrypto().createHash("sha256");
  let size = 0;
  using f = await Deno.open(path, { write: true, createNew: true });
  await writeToFile(
    stream.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, c) {
          hash.update(chunk);
          size += chunk.length;
          c.enqueue(chunk);
        },
      }),
    ),
    f,
  );
  return { digest: hash.digest("hex"), size };
}

/** Compresses file `from` into a new file `to`; its digest and size. */
async function compressFile(
  from: string,
  to: string,
  format: "gzip" | "zstd",
): Promise<{ digest: string; size: number }> {
  const hash = nodeCrypto().createHash("sha256");
  let size = 0;
  using out = await Deno.open(to, { write: true, createNew: true });
  const input = await Deno.open(from);
  await writeCompressed(input.readable, format, {
    async write(b: Uint8Array) {
      hash.update(b);
      size += b.length;
      for (let off = 0; off < b.length;) {
        off += await out.write(b.subarray(off));
      }
      return b.length;
    },
  });
  return { digest: `sha256:${hash.digest("hex")}`, size };
}

async function addFile(w: TarWriter, name: string, body: Uint8Array) {
  await w.add(tarHeader({ name, size: body.length }), body);
}

async function addLayer(w: TarWriter, name: string, l: Exported) {
  const f = await Deno.open(l.path);
  await w.add(tarHeader({ name, size: l.size }), f.readable);
}

type Picked = { ref: string | null; record: { layers: string[] } };

async function writeDocker(
  w: TarWriter,
  saved: SavedImage[],
  configs: Uint8Array[],
  images: Picked[],
  exported: Map<string, Exported>,
) {
  const done = new Set<string>();
  const manifest = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const [i, img] of images.entries()) {
    const layers = [];
    for (const chain of img.record.layers) {
      const l = exported.get(chain)!;
      const dir = chain; // the layer's v1 id: its chain id
      if (!done.has(dir)) {
        done.add(dir);
        await w.add(tarHeader({ name: `${dir}/`, type: "dir" }));
        await addFile(w, `${dir}/VERSION`, enc.encode("1.0"));
        await addFile(
          w,
          `${dir}/json`,
          enc.encode(JSON.stringify({ id: dir })),
        );
        await addLayer(w, `${dir}/layer.tar`, l);
      }
      layers.push(`${dir}/layer.tar`);
    }
    const cfgName = `${saved[i].id.slice(7)}.json`;
    if (!done.has(cfgName)) {
      done.add(cfgName);
      await addFile(w, cfgName, configs[i]);
    }
    manifest.push({
      Config: cfgName,
      RepoTags: img.ref ? [img.ref] : null,
      Layers: layers,
    });
    if (img.ref && img.record.layers.length) {
      const at = img.ref.lastIndexOf(":");
      (repositories[img.ref.slice(0, at)] ??= {})[img.ref.slice(at + 1)] = img
        .record.layers.at(-1)!;
    }
  }
  await addFile(w, "manifest.json", enc.encode(JSON.stringify(manifest)));
  await addFile(w, "repositories", enc.encode(JSON.stringify(repositories)));
}

async function writeOci(
  w: TarWriter,
  saved: SavedImage[],
  configs: Uint8Array[],
  images: Picked[],
  exported: Map<string, Exported>,
  compress: "none" | "gzip" | "zstd",
) {
  await addFile(w, "oci-layout", enc.encode('{"imageLayoutVersion":"1.0.0"}'));
  await w.add(tarHeader({ name: "blobs/", type: "dir" }));
  await w.add(tarHeader({ name: "blobs/sha256/", type: "dir" }));
  const done = new Set<string>();
  const index = [];
  for (const [i, img] of images.entries()) {
    const layers = [];
    for (const chain of img.record.layers) {
      const l = exported.get(chain)!;
      const hex = l.digest.slice(7); // uncompressed: the DiffID
      if (!done.has(hex)) {
        done.add(hex);
        await addLayer(w, `blobs/sha256/${hex}`, l);
      }
      layers.push({
        mediaType: MEDIA_TYPES[compress],
        digest: l.digest,
        size: l.size,
      });
    }
    const cfgHex = saved[i].id.slice(7);
    if (!done.has(cfgHex)) {
      done.add(cfgHex);
      await addFile(w, `blobs/sha256/${cfgHex}`, configs[i]);
    }
    const manifest = enc.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: saved[i].id,
        size: configs[i].length,
      },
      layers,
    }));
    const mHex = sha256Hex(manifest);
    if (!done.has(mHex)) {
      done.add(mHex);
      await addFile(w, `blobs/sha256/${mHex}`, manifest);
    }
    index.push({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: `sha256:${mHex}`,
      size: manifest.length,
      ...(img.ref
        ? {
          annotations: {
            "io.containerd.image.name": img.ref,
            "org.opencontainers.image.ref.name": img.ref,
          },
        }
        : {}),
    });
  }
  await addFile(
    w,
    "index.json",
    enc.encode(JSON.stringify({ schemaVersion: 2, manifests: index })),
  );
}
