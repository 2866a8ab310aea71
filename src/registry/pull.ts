/**
 * `pullImage`: an image from a registry into the store, streamed.
 *
 * The reference is resolved to a manifest (an index is narrowed to the
 * requested platform), the config is fetched and checked against its
 * digest (or read from the image store, where an earlier pull or load left
 * it), and the layers go through the same pipeline as `loadImage`
 * (`src/image/_store_image.ts`): a layer whose chain id the store has is
 * reused without a request; a missing one is streamed from `getBlob`
 * (digest and size verified while it streams, cut connections resumed),
 * decompressed as its media type says, hashed for its DiffID and extracted, and
 * published only when every check passed. No compressed byte is written to
 * disk unless `keepBlobs` asks for it.
 *
 * At most `parallel` layers download (and unpack) at once, bottom first;
 * an abort stops a layer mid-unpack, in a worker too. Two pulls of one image in
 * two processes extract each layer once (per-layer locks). A pull that is
 * interrupted (aborted, killed at any point, a network failure after
 * retries) leaves the store consistent (staging is swept on open) and keeps
 * the layers it completed and verified, so the next pull fetches only the
 * rest; until then `layerfs check` lists them as unused and `layerfs prune`
 * removes them. A pull whose content is wrong (a digest, size or DiffID
 * mismatch) removes the layers it made, like a load that fails.
 *
 * @module
 */

import { DigestMismatch, InvalidImage } from "../errors.ts";
import { sha256Of } from "../_sha256.ts";
import { MAX_JSON, parseManifest } from "../image/_formats.ts";
import { getBlob as storedBlob } from "../image/image_store.ts";
import { isIndex, LAYER_TYPES, MANIFEST_TYPES } from "../image/media_types.ts";
import {
  hostPlatform,
  type IndexEntry,
  parsePlatform,
  type Platform,
  selectPlatform,
} from "../image/platform.ts";
import { type LoadProgress, storeImage } from "../image/_store_image.ts";
import type { Store } from "../store/store.ts";
import {
  type Manifest,
  RegistryClient,
  type RegistryClientOptions,
} from "./client.ts";
import {
  parseReference,
  type Reference,
  referenceOf,
} from "../image/reference.ts";

/** Options of {@link pullImage}. */
export interface PullImageOptions {
  /**
   * The platform to pick from a multi-platform index: `os/arch[/variant]`
   * or a parsed {@link Platform}.
   * @default {the host's, e.g. "linux/amd64"}
   */
  platform?: string | Platform;
  /**
   * Layers downloaded and unpacked at once, each unpacked in a worker
   * thread (the downloads stay on the calling thread, in one client; one
   * layer at a time is decoded and hashed there while its worker extracts
   * it). A blob is requested when its layer's unpack starts and read as it
   * unpacks, and unpacks start bottom first, so at most `parallel` blobs
   * download at once (as podman's `--max-parallel-downloads`): 1 fetches
   * and unpacks one layer after another, on the calling thread. On
   * backends that copy the parent (vfs) layers always go one after another.
   * An image whose missing blobs are under 16 MiB in all unpacks on the
   * calling thread too (a worker's start costs more than it would share),
   * while up to `parallel` of its blobs download at once, read ahead into
   * memory (each at most its manifest size and a 64 KiB block) until
   * their layer's turn.
   * @default {navigator.hardwareConcurrency (the CPUs)}
   */
  parallel?: number;
  /**
   * Keep each downloaded layer's compressed blob in `<root>/images/blobs/`
   * (for a later push of the exact blobs).
   * @default {false}
   */
  keepBlobs?: boolean;
  /**
   * The client to use (its connection pools and tokens are shared); it is
   * left open.
   * @default {a new RegistryClient(clientOptions), closed before this returns}
   */
  client?: RegistryClient;
  /** Options of the client made when `client` is not given. @default {{}} */
  clientOptions?: RegistryClientOptions;
  /** Told about each layer as it starts, streams and ends. */
  onProgress?: (p: LoadProgress) => void;
  /**
   * Stops the pull: no reference is written and no temp file is left;
   * layers already completed stay for the next pull (see the module doc).
   */
  signal?: AbortSignal;
}

/** What {@link pullImage} pulled. */
export interface PulledImage {
  /** The reference, canonical (`host/repository:tag`, or `@digest`). */
  ref: string;
  /** Every reference recorded for it in the image store. */
  refs: string[];
  /** Digest of the image manifest (of the chosen platform, for an index). */
  digest: string;
  /** Image id: `sha256:<config digest>`. */
  id: string;
  /** Chain id of the top layer, or null for an image without layers. */
  topLayer: string | null;
  /** Chain ids, bottom first. */
  layers: string[];
  /** Chain ids this call extracted (the others were in the store already). */
  extracted: string[];
}

/** Indexes nest at most this deep (an index of indexes is rare already). */
const MAX_INDEX_DEPTH = 4;

/**
 * Pulls an image into the store under its reference: see the module doc.
 * Afterwards `findImage(store, ref)`, `layerfs images`, `rmi` and
 * `create --image` know it like a loaded image.
 *
 * Needs network access to the registry and what the store needs to create
 * layers.
 *
 * @param store An open store.
 * @param ref `host/repository[:tag][@digest]` (docker's normalisation applies).
 * @param options Platform, parallelism, client, progress, signal.
 * @returns The image's names, id and layers.
 * @throws {InvalidReference} {RegistryNotFound} {RegistryUnauthorized} {RegistryError}
 * @throws {DigestMismatch} a manifest or blob is not the bytes its digest names (nothing is applied).
 * @throws {InvalidImage} {ForeignLayer} {NoMatchingPlatform}
 *
 * @example
 * ```ts ignore
 * import { openStore, pullImage } from "../../mod.ts";
 * const store = await openStore({ root: "/var/lib/layerfs" });
 * const img = await pullImage(store, "localhost:5000/app:v1");
 * console.log(img.id, img.topLayer);
 * store.close();
 * ```
 */
export async function pullImage(
  store: Store,
  ref: string | Reference,
  options: PullImageOptions = {},
): Promise<PulledImage> {
  const r = typeof ref === "string" ? parseReference(ref) : ref;
  const want = options.platform === undefined
    ? hostPlatform()
    : typeof options.platform === "string"
    ? parsePlatform(options.platform)
    : options.platform;
  const client = options.client ?? new RegistryClient(options.clientOptions);
  const signal = options.signal;
  try {
    const subject = r.toString();
    const m = await resolveManifest(client, r, want, signal);
    const hex = await sha256Of(m.bytes);
    const { config, layers } = parseManifest(m.bytes, subject);
    if (config.size > MAX_JSON) {
      throw new InvalidImage(
        `${subject} config`,
        `it is ${config.size} bytes, more than the ${MAX_JSON}-byte cap for JSON documents`,
      );
    }
    // A config the image store has (verified when stored) is not fetched.
    const local = await storedBlob(store, config.digest);
    let configBytes = local?.length === config.size ? local : undefined;
    if (!configBytes || await sha256Of(configBytes) !== config.digest) {
      configBytes = await new Response(
        client.getBlob(r, `sha256:${config.digest}`, config.size, { signal }),
      ).bytes();
      // RegistryClient.getBlob checked it; a client that replaces it may
      // not have, and the image id is the config's digest.
      const got = await sha256Of(configBytes);
      if (got !== config.digest) {
        throw new DigestMismatch(
          `${subject} config`,
          `sha256:${config.digest}`,
          `sha256:${got}`,
        );
      }
    }
    const refs = [
      ...(r.tag ? [`${r.name}:${r.tag}`] : []),
      ...(r.digest ? [`${r.name}@${r.digest}`] : []),
    ];
    const stored = await storeImage(store, {
      subject,
      refs,
      manifest: { digest: hex, bytes: m.bytes },
      config: configBytes,
      layers: layers.map((l) => ({
        label: `${r.name}@sha256:${l.digest}`,
        digest: l.digest,
        size: l.size,
        // RegistryClient.getBlob checks digest and size as it streams (for
        // its resumes); a client that replaces it is checked again here.
        selfVerifying: client.getBlob === RegistryClient.prototype.getBlob,
        // Decoded as its media type says (a gzip type with zstd bytes fails).
        compression: LAYER_TYPES[l.mediaType ?? ""],
        open: () => ({
          stream: client.getBlob(r, `sha256:${l.digest}`, l.size, { signal }),
          size: l.size,
        }),
      })),
      sources: [r.name],
    }, {
      parallel: options.parallel,
      keepBlobs: options.keepBlobs,
      onProgress: options.onProgress,
      signal,
    });
    return {
      ref: refs[0],
      refs,
      digest: `sha256:${hex}`,
      ...stored,
      topLayer: stored.layers.at(-1) ?? null,
    };
  } finally {
    if (!options.client) client.close();
  }
}

/** The image manifest `r` names for `want`: an index is narrowed to one entry. */
async function resolveManifest(
  client: RegistryClient,
  r: Reference,
  want: Platform,
  signal: AbortSignal | undefined,
): Promise<Manifest> {
  let m = await client.getManifest(r, { accept: MANIFEST_TYPES, signal });
  for (let depth = 0; isIndex(m.mediaType); depth++) {
    if (depth >= MAX_INDEX_DEPTH) {
      throw new InvalidImage(
        r.toString(),
        `its indexes nest more than ${MAX_INDEX_DEPTH} deep`,
      );
    }
    let doc: { manifests: IndexEntry[] };
    try {
      doc = JSON.parse(new TextDecoder().decode(m.bytes));
    } catch {
      throw new InvalidImage(r.toString(), "its index is not JSON");
    }
    const entry = selectPlatform(doc, want, r.toString());
    // referenceOf validates the digest (hostile input) before it is used.
    const next = referenceOf(r.host, r.repository, String(entry.digest));
    m = await client.getManifest(next, { accept: MANIFEST_TYPES, signal });
  }
  return m;
}
