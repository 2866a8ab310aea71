/**
 * `loadImage`: docker-archive and OCI layouts into the store.
 *
 * The archive or layout is read into plans (`_formats.ts`: names, manifest,
 * config, layer paths), and each image goes through the one pipeline that
 * also serves `pullImage` (`_store_image.ts`): layers reused by chain id or
 * streamed from their file region, verified (blob digest and size, DiffID)
 * before they are published, under per-layer locks, then the references.
 *
 * @module
 */

import { InvalidImage, UsageError } from "../errors.ts";
import { decompress, detectCompression } from "../archive/compress/mod.ts";
import type { Store } from "../store/store.ts";
import { writeToFile } from "../archive/write_file.ts";
import { hostPlatform, parsePlatform } from "./platform.ts";
import { type ImagePlan, planImages, readSmall } from "./_formats.ts";
import { dirSource, type ImageSource, tarSource } from "./_source.ts";
import {
  checkParallel,
  type LoadProgress,
  storeImage,
} from "./_store_image.ts";
import {
  checkTag,
  ensureDirs,
  imagesDir,
  sweepImageTemps,
  withTag,
} from "./image_store.ts";

import { abortable } from "./_abort.ts";

export type { LoadProgress } from "./_store_image.ts";

/** Options of {@link loadImage}. */
export interface LoadImageOptions {
  /**
   * `os/arch[/variant]` to pick from multi-platform indexes.
   * @default {the host's, e.g. "linux/amd64"}
   */
  platform?: string;
  /**
   * Load only the image the archive names so: an OCI layout's or
   * oci-archive's `org.opencontainers.image.ref.name` (a bare tag such as
   * "v2", as skopeo's `oci:DIR:v2` and umoci's `--image DIR:v2` name it, or
   * a full name) or `io.containerd.image.name`, or a docker-archive's
   * `RepoTags` entry. A bare tag names no image in the store: give `tag`
   * to name it.
   */
  ref?: string;
  /**
   * `name:tag` for the image instead of the names in the archive (the
   * archive must hold exactly one image).
   * @default {undefined}
   */
  tag?: string;
  /** Told about each layer as it starts, streams and ends. */
  onProgress?: (p: LoadProgress) => void;
  /**
   * Layers of one image unpacked at once, each in a worker thread
   * (decompression, digests, DiffID and extraction), started and published
   * bottom first; never more workers than missing layers. A blob is read
   * only while its layer unpacks. One layer at a time is decoded and hashed
   * on the calling thread while its worker extracts it (so a single missing
   * layer of 16 MiB or more uses two threads too). 1 unpacks on the calling
   * thread without workers, one layer after another; backends that copy the
   * parent (vfs) always do, and so does an image whose missing blobs are
   * under 16 MiB in all (a worker's start costs more than it would share).
   * @default {navigator.hardwareConcurrency (the CPUs)}
   */
  parallel?: number;
  /**
   * Stops the load, a layer in the middle of its unpack too (its staging
   * is removed): the call rejects with the signal's reason, no reference
   * is written and the spool file is removed; layers already completed
   * stay for the next load (`layerfs prune` removes them otherwise).
   */
  signal?: AbortSignal;
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
 * @throws {InvalidReference} `tag` is not an image name (nothing is read or stored)
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
  checkParallel(options.parallel ?? 1);
  if (options.tag !== undefined) checkTag(options.tag);
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
      const { stream } = await decompress(abortable(input, options.signal), {
        name: label,
      });
      await writeToFile(stream, f);
    } catch (e) {
      options.signal?.throwIfAborted();
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
      let plans = await planImages(
        src,
        options.platform === undefined
          ? hostPlatform()
          : parsePlatform(options.platform),
      );
      plans = sameImagesMerged(plans);
      if (options.ref !== undefined) {
        plans = pickRef(plans, options.ref, src.label);
      }
      if (options.tag !== undefined && plans.length !== 1) {
        throw new UsageError(
          `--tag names one image, but ${src.label} holds ${plans.length}; ` +
            `load it without --tag, or pick one with --ref (its names: ${
              namesOf(plans)
            })`,
        );
      }
      const out: LoadedImage[] = [];
      for (const plan of plans) {
        options.signal?.throwIfAborted();
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

/**
 * One plan per image: an archive may list one manifest under several names
 * (skopeo's `oci:DIR:v2` and `oci:DIR:v3` of the same image), which is one
 * image with every name, loaded and reported once.
 */
function sameImagesMerged(plans: ImagePlan[]): ImagePlan[] {
  const byKey = new Map<string, ImagePlan>();
  const out: ImagePlan[] = [];
  for (const p of plans) {
    const key = p.manifest ? `m:${p.manifest.digest}` : `c:${p.config.path}`;
    const had = byKey.get(key);
    if (had === undefined) {
      byKey.set(key, p);
      out.push(p);
      continue;
    }
    had.refs = [...new Set([...had.refs, ...p.refs])];
    had.names = [...new Set([...had.names, ...p.names])];
  }
  return out;
}

/** The archive's names of `plans`, for messages. */
function namesOf(plans: ImagePlan[]): string {
  const named = plans.flatMap((p) => p.names);
  const unnamed = plans.filter((p) => p.names.length === 0).length;
  return [
    ...named.map((n) => JSON.stringify(n)),
    ...(unnamed ? [`${unnamed} unnamed`] : []),
  ].join(", ");
}

/** The plans the archive names `ref` (the `ref` option), or a UsageError listing its names. */
function pickRef(plans: ImagePlan[], ref: string, label: string): ImagePlan[] {
  const hit = plans.filter((p) => p.names.includes(ref));
  if (hit.length === 0) {
    throw new UsageError(
      `${label} names no image ${JSON.stringify(ref)}; its images: ${
        namesOf(plans)
      }`,
    );
  }
  return hit;
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

/**
 * The size of `path` in `src` when it can be had without failing: only a
 * hint for scheduling. A file that cannot be opened fails the load when
 * its layer is opened, and only when the layer is needed (a layer already
 * in the store is not).
 */
function sizeHint(src: ImageSource, path: string): number | undefined {
  try {
    return src.open(path)?.size;
  } catch {
    return undefined;
  }
}

async function loadOne(
  store: Store,
  src: ImageSource,
  plan: ImagePlan,
  options: LoadImageOptions,
): Promise<LoadedImage> {
  const s = plan.subject;
  const config = await readSmall(src, plan.config, `${s} config`);
  const stored = await storeImage(store, {
    subject: s,
    refs: plan.refs,
    localBlobs: true,
    manifest: plan.manifest,
    config,
    layers: plan.layers.map((blob, i) => ({
      label: blob.path,
      digest: blob.digest,
      // A docker-archive's manifest names no sizes; its index knows them
      // (how the layers are scheduled and progress totals depend on them).
      size: blob.size ?? sizeHint(src, blob.path),
      open() {
        const subject = `${s} layer ${i + 1}`;
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
        return { stream: abortable(f.stream(), options.signal), size: f.size };
      },
    })),
  }, {
    onProgress: options.onProgress,
    parallel: options.parallel,
    signal: options.signal,
  });
  return {
    ref: plan.refs[0] ?? null,
    refs: plan.refs,
    ...stored,
    topLayer: stored.layers.at(-1) ?? null,
  };
}
