/**
 * `loadImage`: docker-archive and OCI layouts into the store.
 *
 * Per image: the config is read and checked (its digest is the image id),
 * chain ids are computed from its `rootfs.diff_ids`, and each layer, bottom
 * first, is either reused (a layer with that chain id exists: it was
 * verified when it was made) or streamed from the archive through two
 * hashes (the blob's digest and size, then the uncompressed tar's DiffID)
 * into `Store.applyDiffChecked`, which compares both before the layer is
 * published. A mismatch refuses the image; layers of it made by this load
 * are removed again, and no reference is written.
 *
 * With `parallel` > 1, missing layers are extracted at once and published
 * bottom first, each once the layer below it is there; on backends that
 * copy the parent into a new layer (vfs) each waits for its parent first.
 *
 * Concurrency: each layer is handled under its own flock
 * (`images/locks/<chain id>`), taken bottom first and held until the
 * image's references are written, so two loads of one image extract each
 * layer once, and a failing load never removes a layer another load has
 * just reused.
 *
 * @module
 */

import {
  InvalidArchive,
  InvalidImage,
  LayerExists,
  UsageError,
} from "../errors.ts";
import { decompress, detectCompression } from "../archive/compress/mod.ts";
import type { Store } from "../store/store.ts";
import { writeToFile } from "../archive/write_file.ts";
import { chainIds, digestHex, sha256Hex } from "./digest.ts";
import { hostPlatform, parsePlatform } from "./platform.ts";
import {
  type BlobRef,
  type ImagePlan,
  parseJson,
  planImages,
  readSmall,
} from "./_formats.ts";
import { dirSource, type ImageSource, tarSource } from "./_source.ts";
import { HashedStream } from "./_verify.ts";
import {
  ensureDirs,
  flock,
  type ImageRecord,
  imagesDir,
  putBlob,
  readIndex,
  sweepImageTemps,
  withImagesLock,
  withTag,
  writeIndex,
} from "./image_store.ts";

/** Runs at most `n` of the given jobs at once, in the order they were handed in. */
function semaphore(n: number) {
  let free = n;
  const waiting: (() => void)[] = [];
  return async <T>(job: () => Promise<T>): Promise<T> => {
    if (free > 0) free--;
    else await new Promise<void>((r) => waiting.push(r));
    try {
      return await job();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free++;
    }
  };
}

/** Options of {@link loadImage}. */
export interface LoadImageOptions {
  /**
   * `os/arch[/variant]` to pick from multi-platform indexes.
   * @default {the host's, e.g. "linux/amd64"}
   */
  platform?: string;
  /**
   * `name:tag` for the image instead of the names in the archive (the
   * archive must hold exactly one image).
   * @default {undefined}
   */
  tag?: string;
  /** Told about each layer as it starts, streams and ends. */
  onProgress?: (p: LoadProgress) => void;
  /**
   * Layers of one image extracted at once, published bottom first (each
   * holds a few MiB of buffers). Measured on Deno 2.9.6, 4 is no faster
   * than 1: decompression, hashing and extraction all run on the one JS
   * thread (`DecompressionStream` and `node:zlib` alike), so a gain needs
   * the work moved to workers first.
   * @default {1}
   */
  parallel?: number;
}

/** Progress of one layer of {@link loadImage}. */
export interface LoadProgress {
  /** The image (its first name or manifest digest). */
  image: string;
  /** Layer number, 1 = bottom. */
  layer: number;
  /** Layers of the image. */
  layers: number;
  /** Its chain id. */
  id: string;
  /** Compressed bytes read so far. */
  bytes: number;
  /** "apply" while streaming, "reused" (already in the store) or "done". */
  state: "apply" | "reused" | "done";
}

/** One image {@link loadImage} loaded. */
export interface LoadedImage {
  /** Its first `name:tag`, or null when the archive gives none. */
  ref: string | null;
  /** Every `name:tag` it got. */
  refs: string[];
  /** Image id: `sha256:<config digest>`. */
  id: string;
  /** Chain id of the top layer (what a container layer goes on), or null for an image without layers. */
  topLayer: string | null;
  /** Chain ids, bottom first. */
  layers: string[];
  /** The chain ids this call extracted (the others were in the store already). */
  extracted: string[];
}

/** Where an image comes from: a tar or OCI layout dir path, or a tar stream (spooled to a temp file). */
export type ImageInput = string | ReadableStream<Uint8Array>;

/**
 * Loads the images of a docker-archive (`docker save`, both the classic and
 * the Docker 25+ form) or an OCI image layout (a directory, or a tar of one)
 * into the store: layers under their chain ids (reused when present), and
 * references to their manifests and configs in `<root>/images/`.
 *
 * A stream (standard input), and a gzip- or zstd-compressed archive file
 * (`docker save | gzip`), is first spooled (decompressed) to a temp file in
 * `<root>/images/` because blobs are read by offset; the file is removed
 * before this returns (and swept by the next load if this process dies).
 *
 * Needs what the store needs to create layers (root, or a helper for
 * mounts later); reads only below the given path.
 *
 * @param store An open store.
 * @param source A path (tar file or layout dir) or a tar stream.
 * @param options Platform, tag, progress.
 * @returns The images loaded, in archive order.
 * @throws {InvalidImage} malformed input, hostile names, missing blobs,
 *   digest/size/DiffID mismatches (nothing of that image is kept).
 * @throws {ForeignLayer} {NoMatchingPlatform} {UsageError} (`tag` with several images)
 *
 * @example Load a one-layer OCI layout built on the spot
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { openStore, tarHeader, TarWriter } from "../../mod.ts";
 * import { listImages, loadImage } from "./mod.ts";
 *
 * const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
 * const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
 * const w = new TarWriter();
 * const out = new Response(w.readable).bytes();
 * await w.add(tarHeader({ name: "hello", size: 3 }), new TextEncoder().encode("hi\n"));
 * await w.close();
 * const layer = await out;
 * const config = enc({ architecture: "amd64", os: "linux",
 *   rootfs: { type: "layers", diff_ids: [`sha256:${sha(layer)}`] } });
 * const manifest = enc({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
 *   config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${sha(config)}`, size: config.length },
 *   layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${sha(layer)}`, size: layer.length }] });
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
 * for (const b of [layer, config, manifest]) await Deno.writeFile(`${dir}/blobs/sha256/${sha(b)}`, b);
 * await Deno.writeTextFile(`${dir}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
 * await Deno.writeTextFile(`${dir}/index.json`, JSON.stringify({ schemaVersion: 2, manifests: [{
 *   mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${sha(manifest)}`,
 *   size: manifest.length, annotations: { "org.opencontainers.image.ref.name": "hello:1" } }] }));
 *
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * const [img] = await loadImage(store, dir);
 * assert.equal(img.ref, "hello:1");
 * assert.equal(img.id, `sha256:${sha(config)}`);
 * assert.deepEqual(img.layers, [sha(layer)]); // one layer: its chain id is its DiffID
 * assert.equal(await Deno.readTextFile(`${await store.get(img.topLayer!)}/hello`), "hi\n");
 * await store.put(img.topLayer!);
 * assert.equal((await listImages(store))[0].ref, "hello:1");
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadImage(
  store: Store,
  source: ImageInput,
  options: LoadImageOptions = {},
): Promise<LoadedImage[]> {
  const parallel = options.parallel ?? 1;
  if (!Number.isSafeInteger(parallel) || parallel < 1) {
    throw new UsageError(
      `parallel must be a whole number of at least 1, not ${parallel}`,
    );
  }
  let spool: string | undefined;
  const label = typeof source === "string" ? source : "standard input";
  await ensureDirs(imagesDir(store));
  await sweepImageTemps(store);
  // Blobs are read by offset: a stream, or a compressed archive
  // (`docker save | gzip`), is first written out as a plain tar.
  const spoolFrom = async (input: ReadableStream<Uint8Array>) => {
    spool = await Deno.makeTempFile({
      dir: imagesDir(store),
      prefix: `.spool-${Deno.pid}-`,
    });
    using f = await Deno.open(spool, { write: true });
    try {
      const { stream } = await decompress(input, { name: label });
      await writeToFile(stream, f);
    } catch (e) {
      throw new InvalidImage(
        label,
        `it cannot be read to its end (${(e as Error).message})`,
        "the archive is corrupt or truncated; make or fetch it again",
        { cause: e },
      );
    }
    return spool;
  };
  try {
    let path: string;
    if (typeof source !== "string") path = await spoolFrom(source);
    else if (await isCompressedFile(source)) {
      path = await spoolFrom((await Deno.open(source)).readable);
    } else path = source;
    const src = await openSource(path, label);
    try {
      const plans = await planImages(
        src,
        options.platform === undefined
          ? hostPlatform()
          : parsePlatform(options.platform),
      );
      if (options.tag !== undefined && plans.length !== 1) {
        throw new UsageError(
          `--tag names one image, but ${src.label} holds ${plans.length}; load it without --tag`,
        );
      }
      const out: LoadedImage[] = [];
      for (const plan of plans) {
        if (options.tag !== undefined) plan.refs = [withTag(options.tag)];
        out.push(await loadOne(store, src, plan, options));
      }
      return out;
    } finally {
      src.close();
    }
  } finally {
    if (spool) await Deno.remove(spool).catch(() => {});
  }
}

/** Whether `path` is a regular file of gzip or zstd (magic bytes). */
async function isCompressedFile(path: string): Promise<boolean> {
  let head: Uint8Array;
  try {
    using f = await Deno.open(path);
    if (!(await f.stat()).isFile) return false;
    const buf = new Uint8Array(6);
    head = buf.subarray(0, (await f.read(buf)) ?? 0);
  } catch {
    return false; // openSource says what is wrong with it
  }
  try {
    return detectCompression(head) !== null;
  } catch (e) {
    throw new InvalidImage(
      path,
      (e as Error).message.replace(/^.*?: /, "").replace(/;.*$/, ""),
      "decompress it first (xz -dc, bzip2 -dc) or pipe it in decompressed",
    );
  }
}

async function openSource(
  path: string,
  label: string,
): Promise<ImageSource> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch (e) {
    throw new InvalidImage(
      path,
      `it cannot be read (${(e as Error).message})`,
      "pass an existing tar, OCI layout directory, or - for standard input",
      { cause: e },
    );
  }
  return st.isDirectory ? dirSource(path) : await tarSource(path, label);
}

async function loadOne(
  store: Store,
  src: ImageSource,
  plan: ImagePlan,
  options: LoadImageOptions,
): Promise<LoadedImage> {
  const onProgress = options.onProgress;
  const s = plan.subject;
  const configBytes = await readSmall(src, plan.config, `${s} config`);
  const configHex = sha256Hex(configBytes);
  const config = parseJson(configBytes, "the config", s);
  const rootfs = config.rootfs as Record<string, unknown> | undefined;
  if (
    !rootfs || rootfs.type !== "layers" || !Array.isArray(rootfs.diff_ids)
  ) {
    throw new InvalidImage(s, 'the config has no rootfs of type "layers"');
  }
  const diffIds = rootfs.diff_ids.map((d, i) => {
    digestHex(d, `${s} config diff_ids[${i}]`);
    return d as string;
  });
  if (diffIds.length !== plan.layers.length) {
    throw new InvalidImage(
      s,
      `the manifest lists ${plan.layers.length} layers, the config's rootfs.diff_ids ${diffIds.length}`,
    );
  }
  const chains = chainIds(diffIds);
  const locks: Deno.FsFile[] = [];
  const made: string[] = [];
  const sizes: number[] = [];
  await ensureDirs(imagesDir(store));
  try {
    // Every layer's lock, bottom first (one order for every loader).
    for (const c of chains) {
      locks.push(await flock(`${imagesDir(store)}/locks/${c}`));
    }
    // Missing layers are extracted in parallel (`options.parallel` at
    // once) and published bottom first: each waits for the one below it.
    const slots = semaphore(options.parallel ?? 1);
    const tasks: Promise<number>[] = [];
    let below: Promise<unknown> = Promise.resolve();
    for (let i = 0; i < chains.length; i++) {
      const base = {
        image: s,
        layer: i + 1,
        layers: chains.length,
        id: chains[i],
      };
      if (await store.exists(chains[i])) {
        onProgress?.({ ...base, bytes: 0, state: "reused" });
        tasks.push(Promise.resolve(-1));
        below = Promise.resolve();
        continue;
      }
      const parentReady = below.then(() => {});
      parentReady.catch(() => {}); // reported by the layer below
      const task = slots(() =>
        applyLayer(
          store,
          src,
          plan.layers[i],
          `${s} layer ${i + 1}`,
          diffIds[i],
          chains[i],
          chains[i - 1],
          parentReady,
          (bytes) => onProgress?.({ ...base, bytes, state: "apply" }),
        )
      ).then((size) => {
        if (size >= 0) made.push(chains[i]);
        onProgress?.({ ...base, bytes: size, state: "done" });
        return size;
      });
      task.catch(() => {});
      tasks.push(task);
      below = task;
    }
    const settled = await Promise.allSettled(tasks);
    // The lowest failure is the cause; those above it failed with it.
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    for (const r of settled) {
      sizes.push((r as PromiseFulfilledResult<number>).value);
    }
    const id = `sha256:${configHex}`;
    await withImagesLock(store, async () => {
      await putBlob(store, configHex, configBytes);
      if (plan.manifest) {
        await putBlob(store, plan.manifest.digest, plan.manifest.bytes);
      }
      const idx = await readIndex(store);
      const old = idx.images[configHex];
      // Sizes of reused layers: from an image that has them, else the store.
      const known = new Map<string, number>();
      for (const r of Object.values(idx.images)) {
        r.layers.forEach((l, j) => known.set(l, r.layerSizes?.[j] ?? 0));
      }
      const layerSizes = await Promise.all(
        sizes.map(async (n, j) =>
          n >= 0 ? n : known.get(chains[j]) ?? await store.diffSize(chains[j])
        ),
      );
      const record: ImageRecord = {
        id,
        manifest: plan.manifest
          ? `sha256:${plan.manifest.digest}`
          : old?.manifest ?? null,
        layers: chains,
        diffIds,
        layerSizes,
        size: layerSizes.reduce((a, b) => a + b, 0),
        created: typeof config.created === "string" ? config.created : null,
        loaded: new Date().toISOString(),
      };
      idx.images[configHex] = record;
      for (const r of plan.refs) idx.refs[r] = configHex;
      await writeIndex(store, idx);
    });
    return {
      ref: plan.refs[0] ?? null,
      refs: plan.refs,
      id,
      topLayer: chains.at(-1) ?? null,
      layers: chains,
      extracted: [...made],
    };
  } catch (e) {
    // Top first: what this load made of this image goes again (the locks
    // keep every other load off these layers meanwhile).
    for (const id of made.reverse()) {
      await store.remove(id).catch(() => {});
    }
    throw e;
  } finally {
    for (const l of locks) l.close();
  }
}

/** Streams one layer into the store, verified before it is published. */
async function applyLayer(
  store: Store,
  src: ImageSource,
  blob: BlobRef,
  subject: string,
  diffId: string,
  id: string,
  parent: string | undefined,
  parentReady: Promise<void>,
  onBytes: (total: number) => void,
): Promise<number> {
  const f = src.open(blob.path);
  if (!f) {
    throw new InvalidImage(
      subject,
      `its blob ${blob.path} is missing from the archive`,
    );
  }
  if (blob.size !== undefined && f.size !== blob.size) {
    throw new InvalidImage(
      subject,
      `its blob ${blob.path} is ${f.size} bytes, the manifest says ${blob.size}`,
    );
  }
  let total = 0;
  const packed = new HashedStream(f.stream(), subject, f.size, (n) => {
    total += n;
    onBytes(total);
  });
  let tar: HashedStream | undefined;
  try {
    const { stream } = await decompress(packed.stream, { name: subject });
    tar = new HashedStream(stream, subject);
    const t = tar;
    await store.applyDiffChecked(id, parent, t.stream, async () => {
      await t.drain(); // the extractor stops at the end-of-archive blocks
      await packed.drain();
      if (packed.bytes !== f.size) {
        throw new InvalidImage(
          subject,
          `its blob ${blob.path} ended after ${packed.bytes} of ${f.size} bytes`,
        );
      }
      if (blob.digest !== undefined && packed.digest() !== blob.digest) {
        throw new InvalidImage(
          subject,
          `its blob has digest sha256:${packed.digest()}, the manifest says sha256:${blob.digest}`,
        );
      }
      if (`sha256:${t.digest()}` !== diffId) {
        throw new InvalidImage(
          subject,
          `its uncompressed tar has DiffID sha256:${t.digest()}, the config's rootfs.diff_ids says ${diffId}`,
        );
      }
    }, { parentReady });
    return t.bytes;
  } catch (e) {
    // Another load made it meanwhile without our lock (not a layerfs load):
    // a chain id names one content, so it is the same layer.
    if (e instanceof LayerExists) return -1;
    if (!(e instanceof InvalidArchive)) throw e;
    throw new InvalidImage(
      subject,
      `its layer tar cannot be applied (${(e as Error).message})`,
      "the archive is corrupt or truncated; make or fetch it again",
      { cause: e },
    );
  } finally {
    await tar?.cancel();
    await packed.cancel();
  }
}
