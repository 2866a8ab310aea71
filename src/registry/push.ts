/**
 * `pushImage`: an image of the store to a registry.
 *
 * Blobs go first, the manifest last (a registry never names an image whose
 * blobs it lacks). Per layer, cheapest first:
 * 1. the blob the image was pulled with (its manifest is in the image
 *    store), or one this store pushed before with the same compression
 *    (remembered in the image record): a HEAD finds it in the repository,
 *    or in a repository of the same registry the image was pulled from or
 *    pushed to, which the registry then mounts: neither uploaded nor read;
 * 2. that blob kept on disk by `pullImage({ keepBlobs: true })`: uploaded
 *    as it is;
 * 3. otherwise the layer is exported through `saveImage`'s export path
 *    (an oci-archive in a temp dir under `images/`), compressed (gzip or
 *    zstd) to a temp file while its digest is computed, and uploaded:
 *    monolithic up to `chunkSize`, in chunks above it.
 *
 * A fresh export is the stored layer's content, not necessarily the bytes
 * it was loaded from: when the export's DiffID differs, the config is
 * rewritten with the new `rootfs.diff_ids` (as `saveImage` does), which
 * gives the pushed image a new id; when the export is byte-exact the config
 * is the stored one and the id the loaded one. The manifest is the stored
 * one, byte for byte, when every layer and the config are the stored ones;
 * otherwise a new one in the stored manifest's media type (Docker v2 or
 * OCI; OCI for zstd layers and for images without a manifest).
 *
 * @module
 */

import { StoreError, UsageError } from "../errors.ts";
import { compressor } from "../archive/compress/mod.ts";
import { writeToFile } from "../archive/write_file.ts";
import { sha256Hex } from "../image/digest.ts";
import {
  type Descriptor,
  parseManifest,
  planImages,
} from "../image/_formats.ts";
import {
  ensureDirs,
  getBlob as storedBlob,
  imagesDir,
  readIndex,
  resolveRef,
  sweepImageTemps,
  withImagesLock,
  writeIndex,
} from "../image/image_store.ts";
import {
  DOCKER_CONFIG,
  DOCKER_MANIFEST,
  layerType,
  OCI_CONFIG,
  OCI_MANIFEST,
} from "../image/media_types.ts";
import { hostPlatform } from "../image/platform.ts";
import { type FreshLayer, saveImage } from "../image/save.ts";
import { tarSource } from "../image/_source.ts";
import { checkParallel, semaphore } from "../image/_store_image.ts";
import type { Store } from "../store/store.ts";
import { RegistryClient, type RegistryClientOptions } from "./client.ts";
import { parseReference, type Reference } from "../image/reference.ts";
import { nodeCrypto } from "../_node.ts";

/** Options of {@link pushImage}. */
export interface PushImageOptions {
  /**
   * The image of the store to push (`name:tag`, id, manifest digest).
   * @default {the destination reference, as given and canonical}
   */
  image?: string;
  /** Compression of layers that must be exported afresh. @default {"gzip"} */
  compress?: "gzip" | "zstd";
  /** Blobs larger than this go up in chunks of this size. @default {16 MiB} */
  chunkSize?: number;
  /** Blobs handled at once. @default {3} */
  parallel?: number;
  /** The client to use (left open). @default {a new RegistryClient(clientOptions), closed before this returns} */
  client?: RegistryClient;
  /** Options of the client made when `client` is not given. @default {{}} */
  clientOptions?: RegistryClientOptions;
  /** Told about each layer as it is checked, exported and uploaded. */
  onProgress?: (p: PushProgress) => void;
  /** Stops the push (blobs already uploaded stay; the manifest is not put). */
  signal?: AbortSignal;
}

/** Progress of one blob of {@link pushImage}. */
export interface PushProgress {
  /** Layer number, 1 = bottom; 0 for the config. */
  layer: number;
  /** Layers of the image. */
  layers: number;
  /** The blob's digest, once known. */
  digest?: string;
  /** "export": exported and compressed; then how it ended. */
  state: "export" | "exists" | "mounted" | "uploaded";
}

/** One blob of a pushed image. */
export interface PushedBlob {
  /** Its digest. */
  digest: string;
  /** Its size. */
  size: number;
  /** Its media type. */
  mediaType: string;
  /** "exists": the repository had it; "mounted": from another repository; "uploaded". */
  how: "exists" | "mounted" | "uploaded";
}

/** What {@link pushImage} pushed. */
export interface PushedImage {
  /** The destination, canonical. */
  ref: string;
  /** Digest of the manifest put. */
  digest: string;
  /** Its media type. */
  mediaType: string;
  /** Image id as pushed: `sha256:<config digest>`. */
  id: string;
  /** The id of the image in the store (differs when the config was rewritten). */
  storeId: string;
  /** The config blob. */
  config: PushedBlob;
  /** The layer blobs, bottom first, each with its DiffID. */
  layers: (PushedBlob & { diffId: string })[];
  /**
   * Layers exported afresh for this push (no blob known, no exact rebuild),
   * bottom first, as `saveImage` reports them; empty when none was.
   */
  fresh: FreshLayer[];
}

/** A layer blob this store has pushed (`ImageRecord.pushed`, keyed by `<chain id> <compression>`). */
interface PushedLayer {
  digest: string;
  size: number;
  mediaType: string;
  diffId: string;
}

const enc = new TextEncoder();

/**
 * Pushes an image of the store to `ref`: see the module doc.
 *
 * @param store An open store.
 * @param ref The destination, `host/repository[:tag]`.
 * @param options Which local image, compression, chunking, client, progress.
 * @returns The manifest's digest, the pushed id, each blob and how it went.
 * @throws {ImageNotFound} {InvalidReference} {RegistryUnauthorized} {RegistryError} {DigestMismatch}
 *
 * @example
 * ```ts ignore
 * import { openStore, pushImage } from "../../mod.ts";
 * const store = await openStore({ root: "/var/lib/layerfs" });
 * const pushed = await pushImage(store, "localhost:5000/app:v2", { image: "app:1" });
 * console.log(pushed.digest);
 * store.close();
 * ```
 */
export async function pushImage(
  store: Store,
  ref: string | Reference,
  options: PushImageOptions = {},
): Promise<PushedImage> {
  const r = typeof ref === "string" ? parseReference(ref) : ref;
  const compression = options.compress ?? "gzip";
  if (compression !== "gzip" && compression !== "zstd") {
    throw new UsageError(
      `Unknown compression ${JSON.stringify(compression)}; use gzip or zstd`,
    );
  }
  const chunkSize = options.chunkSize ?? 16 << 20;
  const slots = semaphore(checkParallel(options.parallel ?? 3));
  const signal = options.signal;
  const idx = await readIndex(store);
  const hex = options.image !== undefined
    ? resolveRef(idx, options.image)
    : resolveRef(idx, typeof ref === "string" ? ref : r.toString());
  const record = idx.images[hex];
  const subject = `image ${record.id}`;
  const config = await storedBlob(store, hex);
  if (!config) {
    throw new StoreError(
      `The config of image ${record.id} is missing from ${
        imagesDir(store)
      }/blobs; load or pull the image again`,
    );
  }
  // The descriptors the image came with, when its manifest is stored.
  const stored = record.manifest
    ? await storedBlob(store, record.manifest.slice(7))
    : undefined;
  let original: ReturnType<typeof parseManifest> | undefined;
  if (stored) {
    const m = parseManifest(stored, subject);
    if (m.config.digest === hex && m.layers.length === record.layers.length) {
      original = m;
    }
  }
  const docker = compression === "gzip" &&
    (original?.mediaType ??
        (original?.config.mediaType === DOCKER_CONFIG
          ? DOCKER_MANIFEST
          : OCI_MANIFEST)) === DOCKER_MANIFEST;
  const mediaType = docker ? DOCKER_MANIFEST : OCI_MANIFEST;
  const repo = { host: r.host, repository: r.repository };
  const mountable = (record.sources ?? []).map((s) => parseReference(s))
    .filter((s) => s.host === r.host && s.repository !== r.repository)
    .map((s) => s.repository);
  const client = options.client ?? new RegistryClient(options.clientOptions);
  await ensureDirs(imagesDir(store));
  await sweepImageTemps(store);
  const tmp = await Deno.makeTempDir({
    dir: imagesDir(store),
    prefix: `.push-${Deno.pid}-`,
  });
  // The export (every layer of the image) is made once, when a layer needs it.
  let exported: Promise<Exported> | undefined;
  const exportImage = () =>
    exported ??= exportOci(store, `sha256:${hex}`, `${tmp}/image.tar`);
  const n = record.layers.length;
  const progress = (p: Omit<PushProgress, "layers">) =>
    options.onProgress?.({ ...p, layers: n });

  /** Whether the repository has `digest`, or one of `mountable` does and the registry mounts it. */
  const present = async (
    blob: { digest: string; size: number },
  ): Promise<"exists" | "mounted" | undefined> => {
    if (await client.hasBlob(repo, blob.digest, { signal })) return "exists";
    for (const from of mountable) {
      if (
        !await client.hasBlob({ ...repo, repository: from }, blob.digest, {
          signal,
        })
      ) continue;
      // Not mountable after all (the registry opened an upload instead):
      // a plain error ends pushBlob at once, without an upload.
      const res = await client.pushBlob(repo, blob, () => {
        throw new Error(`${blob.digest} is not mountable from ${from}`);
      }, { mountFrom: [from], signal }).catch(() => undefined);
      if (res?.how === "mounted" || res?.how === "exists") return res.how;
    }
    return undefined;
  };

  const upload = async (
    blob: { digest: string; size: number },
    path: string,
  ) =>
    (await client.pushBlob(repo, blob, () => fileStream(path), {
      chunkSize: blob.size > chunkSize ? chunkSize : undefined,
      signal,
    })).how;

  const freshAt: (FreshLayer | undefined)[] = [];
  try {
    const layers = await Promise.all(
      record.layers.map((chain, i) =>
        slots(async (): Promise<PushedBlob & { diffId: string }> => {
          signal?.throwIfAborted();
          // 1. A blob known for this layer, found in the registry.
          const known: PushedLayer[] = [];
          const o = original?.layers[i];
          if (o?.mediaType) {
            known.push({
              digest: `sha256:${o.digest}`,
              size: o.size,
              mediaType: o.mediaType,
              diffId: record.diffIds[i],
            });
          }
          const prev = record.pushed?.[`${chain} ${compression}`];
          if (prev) known.push(prev);
          for (const k of known) {
            const how = await present(k);
            if (how) {
              progress({ layer: i + 1, digest: k.digest, state: how });
              return { ...k, how };
            }
          }
          // 2. The pulled blob, kept on disk.
          if (o?.mediaType) {
            const path = `${imagesDir(store)}/blobs/sha256/${o.digest}`;
            const st = await Deno.stat(path).catch(() => undefined);
            if (st?.size === o.size) {
              const how = await upload(known[0], path);
              progress({ layer: i + 1, digest: known[0].digest, state: how });
              return { ...known[0], how };
            }
          }
          // 3. Exported afresh and compressed.
          const ex = await exportImage();
          freshAt[i] = ex.fresh.find((f) => f.layer === chain);
          const out = `${tmp}/${chain}.${compression}`;
          const blob = await compressTo(ex.layer(i), compression, out);
          progress({ layer: i + 1, digest: blob.digest, state: "export" });
          const how = await upload(blob, out);
          await Deno.remove(out).catch(() => {});
          progress({ layer: i + 1, digest: blob.digest, state: how });
          return {
            ...blob,
            mediaType: layerType(compression, docker),
            diffId: ex.diffIds[i],
            how,
          };
        })
      ),
    );
    const diffIds = layers.map((l) => l.diffId);
    let configBytes = config;
    if (diffIds.some((d, i) => d !== record.diffIds[i])) {
      const c = JSON.parse(new TextDecoder().decode(config));
      c.rootfs = { ...c.rootfs, type: "layers", diff_ids: diffIds };
      configBytes = enc.encode(JSON.stringify(c));
    }
    const configBlob = {
      digest: `sha256:${sha256Hex(configBytes)}`,
      size: configBytes.length,
    };
    const configType = docker ? DOCKER_CONFIG : OCI_CONFIG;
    const configHow = (await client.pushBlob(repo, configBlob, configBytes, {
      mountFrom: mountable,
      signal,
    })).how;
    progress({ layer: 0, digest: configBlob.digest, state: configHow });
    const same = stored && original && configBytes === config &&
      layers.every((l, i) =>
        l.digest === `sha256:${original!.layers[i].digest}`
      ) && (original.mediaType ?? OCI_MANIFEST) === mediaType;
    const manifest = same ? stored! : enc.encode(JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: configType, ...configBlob },
      layers: layers.map((l) => ({
        mediaType: l.mediaType,
        digest: l.digest,
        size: l.size,
      })),
    }));
    signal?.throwIfAborted();
    const digest = await client.putManifest(r, mediaType, manifest, {
      signal,
    });
    // Remember where the blobs are now, and the fresh ones' descriptors.
    await withImagesLock(store, async () => {
      const now = await readIndex(store);
      const rec = now.images[hex];
      if (!rec) return;
      rec.sources = [...new Set([...(rec.sources ?? []), r.name])];
      layers.forEach((l, i) => {
        if (l.diffId !== record.diffIds[i] || !original?.layers[i]) {
          (rec.pushed ??= {})[`${rec.layers[i]} ${compression}`] = {
            digest: l.digest,
            size: l.size,
            mediaType: l.mediaType,
            diffId: l.diffId,
          };
        }
      });
      await writeIndex(store, now);
    });
    return {
      ref: r.toString(),
      digest,
      mediaType,
      id: configBlob.digest,
      storeId: record.id,
      config: { ...configBlob, mediaType: configType, how: configHow },
      layers,
      fresh: freshAt.filter((f) => f !== undefined),
    };
  } finally {
    if (!options.client) client.close();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

interface Exported {
  /** DiffIDs of the exported layers, bottom first. */
  diffIds: string[];
  /** The layers `saveImage` exported afresh. */
  fresh: FreshLayer[];
  /** Layer `i`'s uncompressed tar. */
  layer(i: number): ReadableStream<Uint8Array>;
}

/** The image exported through `saveImage` to an oci-archive at `path`. */
async function exportOci(
  store: Store,
  image: string,
  path: string,
): Promise<Exported> {
  const [saved] = await saveImage(store, [image], path, { format: "oci" });
  const src = await tarSource(path);
  const [plan] = await planImages(src, hostPlatform());
  return {
    diffIds: saved.diffIds,
    fresh: saved.fresh,
    layer: (i) => src.open((plan.layers[i] as Descriptor).path)!.stream(),
  };
}

/** Compresses `tar` to `path`, hashing the compressed bytes. */
async function compressTo(
  tar: ReadableStream<Uint8Array>,
  compression: "gzip" | "zstd",
  path: string,
): Promise<{ digest: string; size: number }> {
  const hash = nodeCrypto().createHash("sha256");
  let size = 0;
  using f = await Deno.open(path, { write: true, createNew: true });
  await writeToFile(
    tar.pipeThrough(compressor(compression)).pipeThrough(
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
  return { digest: `sha256:${hash.digest("hex")}`, size };
}

/** A file's bytes as a stream (opened on the first read, closed at the end). */
function fileStream(path: string): ReadableStream<Uint8Array> {
  let file: Deno.FsFile | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      file ??= await Deno.open(path);
      const buf = new Uint8Array(1 << 20);
      const n = await file.read(buf);
      if (n === null) {
        file.close();
        c.close();
      } else c.enqueue(buf.subarray(0, n));
    },
    cancel() {
      file?.close();
    },
  });
}
