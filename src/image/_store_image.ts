/**
 * Internal: the one pipeline that puts an image into the store, whatever
 * its bytes come from (`loadImage`: a file region of an archive or layout;
 * `pullImage`: an HTTP stream from a registry).
 *
 * Per image: the config (already read and checked against its digest) is
 * parsed, chain ids are computed from its `rootfs.diff_ids`, and each
 * layer, bottom first, is either reused (a layer with that chain id exists:
 * it was verified when it was made; its source is never opened) or
 * streamed through two hashes (the blob's digest and size, then the
 * uncompressed tar's DiffID) into `Store.applyDiffChecked`, which compares
 * both before the layer is published. Nothing compressed is written to disk
 * unless `keepBlobs` asks for it (then the blob goes to
 * `images/blobs/sha256/<hex>` under a temp name, renamed once verified,
 * under `images/lock` so that prune's blob sweep never deletes it).
 * A mismatch (wrong content) refuses the image: layers of it made by this
 * call are removed again, and no reference is written. An interruption (an
 * abort, a network failure after retries, a full disk, a killed process)
 * writes no reference either, but keeps the layers it completed: they were
 * verified, and the next load or pull of the image reuses them; until then
 * they are unused image layers (`src/image/prune.ts`).
 *
 * With `parallel` > 1, missing layers are fetched and extracted at once
 * and published bottom first, each once the layer below it is there; on
 * backends that copy the parent into a new layer (vfs) each waits for its
 * parent before it reads its source. A layer's source is opened when its
 * unpack starts and read as it unpacks, at most `parallel` at once; the
 * largest missing layer starts first (the longest job: last, it would run
 * alone at the end), then the others bottom first. An interrupted pull has
 * published a bottom run of the missing layers; a layer done above a gap
 * (the largest one, say) is lost with its staging.
 *
 * Concurrency: each layer is handled under its own flock
 * (`images/locks/<chain id>`), taken bottom first and held until the
 * image's references are written, so two loads or pulls of one image (in
 * any processes) extract each layer once, and a failing one never removes
 * a layer another has just reused.
 *
 * @module
 */

import {
  DigestMismatch,
  InvalidArchive,
  InvalidImage,
  LayerExists,
  LayerNotFound,
  StoreError,
  UsageError,
} from "../errors.ts";
import { backendByName } from "../backends/registry.ts";
import type { Store } from "../store/store.ts";
import { chainIdsAsync, digestHex } from "./digest.ts";
import { sha256Of } from "../_sha256.ts";
import { parseJson } from "./_formats.ts";
import {
  inlineUnpacker,
  type Place,
  readAheadUnpacker,
  type Unpacker,
  workerUnpacker,
} from "./_unpack_pool.ts";
import {
  ensureDirs,
  flock,
  type ImageRecord,
  imagesDir,
  type LayerLock,
  putBlob,
  readIndex,
  withImagesLock,
  writeIndex,
} from "./image_store.ts";

export { semaphore } from "./_unpack_pool.ts";

/** Checks a `parallel` option. */
export function checkParallel(parallel: number): number {
  if (!Number.isSafeInteger(parallel) || parallel < 1) {
    throw new UsageError(
      `parallel must be a whole number of at least 1, not ${parallel}`,
    );
  }
  return parallel;
}

/** Progress of one layer of an image going into the store. */
export interface LoadProgress {
  /** The image (its first name or manifest digest). */
  image: string;
  /** Layer number, 1 = bottom. */
  layer: number;
  /** Layers of the image. */
  layers: number;
  /** Its chain id. */
  id: string;
  /** Compressed bytes read (downloaded) so far; the uncompressed size when "done". */
  bytes: number;
  /** The blob's size (compressed), when known. */
  total?: number;
  /**
   * "apply" while streaming (read or downloaded, decompressed and extracted
   * at once), "reused" (already in the store) or "done" (published).
   */
  state: "apply" | "reused" | "done";
}

/** Where one layer's blob comes from. */
export interface LayerSource {
  /** Names it in errors: a path in an archive, or a blob of a repository. */
  label: string;
  /** Expected sha256 hex of the blob, when known. */
  digest?: string;
  /** Expected size of the blob, when known before it is opened. */
  size?: number;
  /**
   * Whether the stream `open` gives checks its bytes against `digest` and
   * `size` itself and errors at its end when they differ (a registry
   * blob's does): the unpack then does not hash them a second time.
   * @default {false}
   */
  selfVerifying?: boolean;
  /**
   * Its compression, when its media type names it (a registry's layers):
   * decoded as that. Without it the compression is detected from the bytes.
   */
  compression?: "none" | "gzip" | "zstd";
  /**
   * Opens the blob (called at most once, and only when the layer is not in
   * the store yet): its bytes, and its size when known (more bytes are an
   * error, fewer too).
   */
  open(): { stream: ReadableStream<Uint8Array>; size?: number };
}

/** An image ready to go into the store. */
export interface ImageToStore {
  /** For messages: its name or manifest digest. */
  subject: string;
  /** References to record for it (`name:tag`, `name@sha256:...`). */
  refs: string[];
  /** Its manifest: digest hex and bytes (verified), when it has one. */
  manifest?: { digest: string; bytes: Uint8Array };
  /** The config's bytes (verified against the manifest's digest, when there is one). */
  config: Uint8Array;
  /** Its layers, bottom first. */
  layers: LayerSource[];
  /** Repositories (`host/repository`) it came from, remembered for pushes (cross-repository mounts). */
  sources?: string[];
  /**
   * The blobs are local files (a load), not downloads: nothing is won by
   * reading a small image's ahead while it unpacks on the calling thread
   * (see {@link SMALL_IMAGE}). @default {false}
   */
  localBlobs?: boolean;
}

/** Options of {@link storeImage}. */
export interface StoreImageOptions {
  /** Told about each layer as it starts, streams and ends. */
  onProgress?: (p: LoadProgress) => void;
  /** Layers fetched and unpacked at once, in workers (see `unpackerFor` for when not). @default {navigator.hardwareConcurrency} */
  parallel?: number;
  /** Keep each extracted layer's compressed blob in `images/blobs/`. @default {false} */
  keepBlobs?: boolean;
  /** Stops it: the signal's reason is thrown; completed layers stay (see the module doc). */
  signal?: AbortSignal;
}

/** What {@link storeImage} stored. */
export interface StoredImage {
  /** Image id: `sha256:<config digest>`. */
  id: string;
  /** Chain ids, bottom first. */
  layers: string[];
  /** The chain ids this call extracted (the others were in the store already). */
  extracted: string[];
}

/**
 * Puts one image into the store: see the module doc.
 *
 * @throws {InvalidImage} a config without layers, a digest, size or DiffID mismatch.
 */
export async function storeImage(
  store: Store,
  image: ImageToStore,
  options: StoreImageOptions = {},
): Promise<StoredImage> {
  const { onProgress, signal } = options;
  const s = image.subject;
  signal?.throwIfAborted();
  const configBytes = image.config;
  const configHex = await sha256Of(configBytes);
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
  if (diffIds.length !== image.layers.length) {
    throw new InvalidImage(
      s,
      `the manifest lists ${image.layers.length} layers, the config's rootfs.diff_ids ${diffIds.length}`,
    );
  }
  const chains = await chainIdsAsync(diffIds);
  const locks: LayerLock[] = [];
  const made: string[] = [];
  const sizes: number[] = [];
  let unpacker: Unpacker | undefined;
  await ensureDirs(imagesDir(store));
  try {
    // Every layer's lock, bottom first (one order for every loader).
    for (const c of chains) {
      locks.push(await flock(`${imagesDir(store)}/locks/${c}`));
      signal?.throwIfAborted();
    }
    // Missing layers are extracted in parallel (`options.parallel` at
    // once, in workers) and published bottom first: each waits for the one
    // below it.
    unpacker = await unpackerFor(
      store,
      chains,
      image,
      options.parallel,
    );
    const tasks: Promise<number>[] = [];
    // Stops the layers already started when starting the next one fails:
    // they settle before the locks go and the workers are closed.
    const stopStarted = new AbortController();
    const jobSignal = signal
      ? AbortSignal.any([signal, stopStarted.signal])
      : stopStarted.signal;
    let below: Promise<unknown> = Promise.resolve();
    // With slots to share, the largest missing layer starts first (the
    // longest job: started last, it ran alone at the end, a 4-layer pull
    // 4% slower), the others bottom first.
    const early = new Map<number, Place>();
    if (unpacker.slots > 1) {
      const first = await largestMissing(store, chains, image.layers);
      if (first > 0) early.set(first, unpacker.place());
    }
    try {
      for (let i = 0; i < chains.length; i++) {
        const layer = image.layers[i];
        const base = {
          image: s,
          layer: i + 1,
          layers: chains.length,
          id: chains[i],
          total: layer.size,
        };
        if (await store.exists(chains[i])) {
          early.get(i)?.release();
          onProgress?.({ ...base, bytes: 0, state: "reused" });
          tasks.push(Promise.resolve(-1));
          below = Promise.resolve();
          continue;
        }
        const parentReady = below.then(() => {});
        parentReady.catch(() => {}); // reported by the layer below
        // Places taken here, bottom first (after the early one), start the
        // unpacks (and so the downloads) in that order, whenever each
        // layer's staging is ready.
        const place = early.get(i) ?? unpacker.place();
        const task = applyLayer(store, place, jobSignal, {
          blob: layer,
          subject: `${s} layer ${i + 1}`,
          diffId: diffIds[i],
          id: chains[i],
          parent: chains[i - 1],
          parentReady,
          keepBlob: options.keepBlobs === true,
          onBytes: (bytes) => onProgress?.({ ...base, bytes, state: "apply" }),
        }).then((size) => {
          if (size >= 0) made.push(chains[i]);
          onProgress?.({ ...base, bytes: size, state: "done" });
          return size;
        });
        task.catch(() => {});
        tasks.push(task);
        below = task;
      }
    } catch (e) {
      stopStarted.abort(e);
      // An early place never reached would hold back those behind it.
      for (const p of early.values()) p.release();
      await Promise.allSettled(tasks);
      throw e;
    }
    const settled = await Promise.allSettled(tasks);
    signal?.throwIfAborted(); // its reason, not what it made of the streams
    // The lowest failure is the cause; those above it failed with it.
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    signal?.throwIfAborted();
    for (const r of settled) {
      sizes.push((r as PromiseFulfilledResult<number>).value);
    }
    const id = `sha256:${configHex}`;
    await withImagesLock(store, async () => {
      await putBlob(store, configHex, configBytes);
      if (image.manifest) {
        await putBlob(store, image.manifest.digest, image.manifest.bytes);
      }
      const idx = await readIndex(store);
      const old = idx.images[configHex];
      // Sizes of reused layers (their tars' bytes): from an image that has
      // them, else the layer's tar-split record; the files' bytes only for a
      // layer without one.
      const known = new Map<string, number>();
      for (const r of Object.values(idx.images)) {
        r.layers.forEach((l, j) => known.set(l, r.layerSizes?.[j] ?? 0));
      }
      const layerSizes = await Promise.all(
        sizes.map(async (n, j) =>
          n >= 0 ? n : known.get(chains[j]) ??
            await store.exactDiffSize(chains[j]) ??
            await store.diffSize(chains[j])
        ),
      );
      const sources = [
        ...new Set([...(old?.sources ?? []), ...(image.sources ?? [])]),
      ];
      const record: ImageRecord = {
        id,
        manifest: image.manifest
          ? `sha256:${image.manifest.digest}`
          : old?.manifest ?? null,
        layers: chains,
        diffIds,
        layerSizes,
        size: layerSizes.reduce((a, b) => a + b, 0),
        created: typeof config.created === "string" ? config.created : null,
        loaded: new Date().toISOString(),
        ...(sources.length ? { sources } : {}),
      };
      idx.images[configHex] = record;
      for (const r of image.refs) idx.refs[r] = configHex;
      // Released layers reused are an image's again.
      for (const c of chains) delete idx.released?.[c];
      if (idx.released && !Object.keys(idx.released).length) {
        delete idx.released;
      }
      // Under the store lock, once every layer is there: a `remove` of one
      // of them (it was no image's until now) either came first, and then
      // no reference is written, or sees this one and is refused.
      await store.whileLayersExist(chains, () => writeIndex(store, idx))
        .catch((e) => {
          if (!(e instanceof LayerNotFound)) throw e;
          throw new StoreError(
            `Cannot record image ${s}: its layer ${e.id} was removed while the image was being stored; ` +
              `load or pull it again`,
            { cause: e },
          );
        });
    });
    return { id, layers: chains, extracted: [...made] };
  } catch (e) {
    // Wrong content refuses the image: what this call made of it goes
    // again, top first (the locks keep every other load off these layers
    // meanwhile). An interruption keeps the layers it completed: each was
    // verified before it was published, so the next pull reuses them
    // ("layerfs prune" removes them if it never comes).
    if (refusesImage(e, signal)) {
      for (const id of made.reverse()) {
        await store.remove(id).catch(() => {});
      }
    }
    throw e;
  } finally {
    unpacker?.close();
    for (const l of locks) l.close();
  }
}

/**
 * Whether failure `e` says the image's content is wrong (a digest, size or
 * DiffID mismatch, a tar that cannot be applied), rather than that its
 * storing was interrupted (an abort, a network failure, a full disk).
 */
function refusesImage(e: unknown, signal?: AbortSignal): boolean {
  // An abort can surface as a short blob; it says nothing of the content.
  if (signal?.aborted) return false;
  return e instanceof InvalidImage || e instanceof DigestMismatch ||
    e instanceof InvalidArchive;
}

interface LayerJob {
  blob: LayerSource;
  subject: string;
  diffId: string;
  id: string;
  parent: string | undefined;
  parentReady: Promise<void>;
  keepBlob: boolean;
  onBytes: (total: number) => void;
}

/**
 * Where this image's layers unpack: `parallel` workers (default: one per
 * CPU), never more than the layers missing, one of the layers decoded on
 * the calling thread and extracted in its worker; all on the calling
 * thread for `parallel: 1`, on backends that copy the parent (each layer
 * waits for the one below it anyway), for a lone missing layer under
 * {@link LONE_LAYER_SPLIT} bytes or of unknown size, and for missing
 * blobs under {@link SMALL_IMAGE} bytes in all (downloads then read ahead,
 * `parallel` at once).
 */
async function unpackerFor(
  store: Store,
  chains: string[],
  image: ImageToStore,
  parallel: number | undefined,
): Promise<Unpacker> {
  const layers = image.layers;
  const n = checkParallel(parallel ?? navigator.hardwareConcurrency ?? 1);
  if (n === 1 || backendByName(store.backend).capabilities.copiesParent) {
    return inlineUnpacker();
  }
  const missing: LayerSource[] = [];
  for (const [i, c] of chains.entries()) {
    if (!(await store.exists(c))) missing.push(layers[i]);
  }
  // A worker takes ~50 ms to start: a lone small layer is done by then,
  // and so are a few small ones. Read from local files they unpack one
  // after another; downloaded, they are all fetched at once (read ahead
  // into memory, at most `n` at a time) while they unpack one after
  // another, so that the network waits still overlap.
  const missingBytes = missing.reduce(
    (sum, l) => sum + (l.size ?? Infinity),
    0,
  );
  if (
    missing.length === 0 ||
    (missing.length === 1 && (missing[0].size ?? 0) < LONE_LAYER_SPLIT)
  ) {
    return inlineUnpacker();
  }
  if (missingBytes < SMALL_IMAGE) {
    return image.localBlobs ? inlineUnpacker() : readAheadUnpacker(n);
  }
  // A layer that holds most of the bytes (a base image's; alone, or twice
  // all the others) is split across two threads: it starts first (see
  // storeImage), and the calling thread decodes and hashes it while a
  // worker extracts it (a 4-layer load with a 253 MiB rootfs: 0.99 s
  // against 1.06 s). Otherwise each layer unpacks whole in its worker and
  // the calling thread only relays bytes: decoding one of them here too
  // made it the bottleneck (a 4-layer pull with no such layer: 0.62 s
  // against 0.58 s).
  const sizes = missing.map((l) => l.size ?? 0);
  const largest = Math.max(...sizes);
  const rest = sizes.reduce((a, b) => a + b, 0) - largest;
  // Unknown sizes (a source that cannot say) say nothing: no split then.
  const known = missing.every((l) => l.size !== undefined);
  return workerUnpacker(Math.min(n, missing.length), {
    decodeHere: missing.length === 1 || (known && largest >= 2 * rest) ? 1 : 0,
  });
}

/** The index of the largest missing layer of known size (-1: none). */
async function largestMissing(
  store: Store,
  chains: string[],
  layers: LayerSource[],
): Promise<number> {
  let best = -1;
  for (const [i, c] of chains.entries()) {
    const size = layers[i].size ?? -1;
    if (size > (layers[best]?.size ?? -1) && !(await store.exists(c))) {
      best = i;
    }
  }
  return best;
}

/**
 * Blob bytes from which a lone missing layer is split across two threads:
 * the split saves about a third of an unpack and costs a worker's start,
 * even at about 10 MiB of gzip.
 */
const LONE_LAYER_SPLIT = 16 << 20;

/**
 * Blob bytes (every missing layer's, sizes known) under which an image's
 * layers unpack one after another on the calling thread instead of in
 * workers. `layerfs load` of OCI layouts on tmpfs, medians of workers (2)
 * against the calling thread: 2 gzip layers of 24 KB in all, 251 -> 162
 * ms; 3 of 1.9 MB, 268 -> 181 ms; 2 of 11 MB, 308 -> 237 ms (a worker's
 * start and its module graph cost more than the unpack they share).
 * A pull of 3 gzip layers of 2 KB in all from a local registry into an
 * overlay store: 207 -> 136 ms (downloads read ahead, `readAheadUnpacker`);
 * 3 of 5.4 MB (16.3 MB): 341 -> 325 ms.
 */
const SMALL_IMAGE = 16 << 20;

/** Streams one layer into the store, verified before it is published. */
async function applyLayer(
  store: Store,
  place: Place,
  signal: AbortSignal | undefined,
  job: LayerJob,
): Promise<number> {
  const { blob } = job;
  // A kept blob is written under a temp name and renamed once verified.
  const keepTmp = job.keepBlob && blob.digest !== undefined
    ? `${imagesDir(store)}/blobs/sha256/${blob.digest}.tmp-${Deno.pid}-${
      crypto.randomUUID().slice(0, 8)
    }`
    : undefined;
  try {
    return await store.applyDiffStaged(job.id, job.parent, async (staged) => {
      const size = await place.run(
        {
          subject: job.subject,
          label: blob.label,
          // A self-verifying stream fails by itself before its end is taken.
          digest: blob.selfVerifying ? undefined : blob.digest,
          selfVerifying: blob.selfVerifying,
          size: blob.size,
          compression: blob.compression,
          diffId: job.diffId,
          keepTmp,
        },
        () => {
          signal?.throwIfAborted();
          return blob.open();
        },
        staged,
        job.onBytes,
        signal,
      );
      if (keepTmp !== undefined) {
        // Under images/lock, as prune's blob sweep runs: a sweep that found
        // this digest unused (a copy an earlier pull kept) and no load busy
        // must not delete the copy this pull keeps right after its check.
        await withImagesLock(
          store,
          () => Deno.rename(keepTmp, keepTmp.replace(/\.tmp-.*$/, "")),
        );
      }
      return size;
    }, { parentReady: job.parentReady, imageLayer: true });
  } catch (e) {
    if (keepTmp !== undefined) await Deno.remove(keepTmp).catch(() => {});
    // Another load made it meanwhile without our lock (not a layerfs load):
    // a chain id names one content, so it is the same layer.
    if (e instanceof LayerExists) return -1;
    throw e;
  } finally {
    place.release(); // it never ran (failed before its turn): the next may
  }
}
