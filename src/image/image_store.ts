/**
 * The image store, beside the layers: `<root>/images/`.
 *
 * ```
 * images/index.json            { version, images: { <id hex>: record }, refs: { "name:tag": <id hex> } }
 * images/blobs/sha256/<hex>    manifests and configs, content-addressed, the bytes as loaded
 * images/lock                  flock held while references change
 * images/locks/<chain id>      per-layer flocks held while a load extracts, reuses or rolls back
 * ```
 *
 * Every write is crash-safe (temp, fsync, rename, fsync of the directory):
 * blobs are written before the index that names them, so a crash leaves at
 * worst an unreferenced blob, which the next removal sweeps.
 *
 * Lock order (no deadlock): per-layer locks bottom first, then `images/lock`.
 *
 * @module
 */

import { ImageNotFound, StoreError } from "../errors.ts";
import { syncDir } from "../store/_atomic.ts";
import type { Store } from "../store/store.ts";

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
}

/** Where the image store of `store` lives. */
export function imagesDir(store: Store): string {
  return `${store.root}/images`;
}

/** Makes `images/blobs/sha256` and `images/locks` if missing. */
export async function ensureDirs(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.mkdir(`${dir}/locks`, { recursive: true });
}

/** Runs `fn` holding an exclusive flock on `path` (created if missing). */
export async function withFlock<T>(
  path: string,
  fn: () => Promise<T>,
): Promise<T> {
  const f = await Deno.open(path, { read: true, write: true, create: true });
  try {
    await f.lock(true);
    return await fn();
  } finally {
    f.close(); // releases the flock
  }
}

/** An exclusive flock on `path`, held until the returned file is closed. */
export async function flock(path: string): Promise<Deno.FsFile> {
  const f = await Deno.open(path, { read: true, write: true, create: true });
  try {
    await f.lock(true);
    return f;
  } catch (e) {
    f.close();
    throw e;
  }
}

/** Runs `fn` under `images/lock`. */
export async function withImagesLock<T>(
  store: Store,
  fn: () => Promise<T>,
): Promise<T> {
  const dir = imagesDir(store);
  await ensureDirs(dir);
  return await withFlock(`${dir}/lock`, fn);
}

/** Reads `images/index.json` (an empty index when there is none). */
export async function readIndex(store: Store): Promise<ImageIndex> {
  const path = `${imagesDir(store)}/index.json`;
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

/** Writes `bytes` to `path` crash-safely. */
export async function writeAtomic(
  path: string,
  bytes: Uint8Array,
): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    using f = await Deno.open(tmp, { write: true, createNew: true });
    for (let off = 0; off < bytes.length;) {
      off += await f.write(bytes.subarray(off));
    }
    await f.sync();
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new StoreError(
      `Cannot write ${path} (${
        (e as Error).message
      }); check free space and permissions`,
      { cause: e },
    );
  }
  await syncDir(path.slice(0, path.lastIndexOf("/")));
}

/** Writes the index (caller holds `images/lock`). */
export async function writeIndex(store: Store, idx: ImageIndex): Promise<void> {
  await writeAtomic(
    `${imagesDir(store)}/index.json`,
    new TextEncoder().encode(JSON.stringify(idx, null, 1) + "\n"),
  );
}

/** Stores a manifest or config blob under its digest hex (idempotent). */
export async function putBlob(
  store: Store,
  hex: string,
  bytes: Uint8Array,
): Promise<void> {
  const dir = imagesDir(store);
  await ensureDirs(dir);
  const path = `${dir}/blobs/sha256/${hex}`;
  try {
    await Deno.lstat(path);
    return;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await writeAtomic(path, bytes);
}

/** A stored manifest or config blob, or undefined. */
export async function getBlob(
  store: Store,
  hex: string,
): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(`${imagesDir(store)}/blobs/sha256/${hex}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/**
 * Resolves `ref` (`name:tag`, `name` meaning `name:latest`, `sha256:<id>`,
 * a 64-hex id, a unique id prefix of at least 12 hex chars, or a manifest
 * digest: `sha256:<manifest>`, `name@sha256:<manifest>`) to an image id hex.
 *
 * @throws {ImageNotFound}
 */
export function resolveRef(idx: ImageIndex, ref: string): string {
  const byTag = idx.refs[ref] ?? idx.refs[withTag(ref)];
  if (byTag !== undefined) return byTag;
  // By manifest digest: `sha256:<manifest>` or `name@sha256:<manifest>`.
  const at = ref.lastIndexOf("@");
  const digest = at >= 0 ? ref.slice(at + 1) : ref;
  if (/^sha256:[0-9a-f]{64}$/.test(digest)) {
    const hit = Object.entries(idx.images).find(([, r]) =>
      r.manifest === digest
    );
    if (hit) return hit[0];
  }
  if (at >= 0) throw new ImageNotFound(ref);
  const hex = ref.startsWith("sha256:") ? ref.slice(7) : ref;
  if (/^[0-9a-f]{12,64}$/.test(hex)) {
    const hits = Object.keys(idx.images).filter((id) => id.startsWith(hex));
    if (hits.length === 1) return hits[0];
  }
  throw new ImageNotFound(ref);
}

/** `name` with `:latest` when it has no tag. */
export function withTag(ref: string): string {
  const slash = ref.lastIndexOf("/");
  return ref.indexOf(":", slash + 1) >= 0 || ref.includes("@")
    ? ref
    : `${ref}:latest`;
}

/** Temp entries of image operations: `.spool-<pid>-*`, `.save-<pid>-*`, `.push-<pid>-*`, `*.tmp-<pid>-<hex>`. */
const TEMP = /^\.(?:spool|save|push)-(\d+)-|\.tmp-(\d+)-[0-9a-f]{8}$/;

/**
 * Removes temp entries under `images/` (and `images/blobs/sha256/`) left by
 * processes that are gone (a crash in the middle of a load or save).
 */
export async function sweepImageTemps(store: Store): Promise<void> {
  const dir = imagesDir(store);
  for (const d of [dir, `${dir}/blobs/sha256`]) {
    let names: string[];
    try {
      names = [...Deno.readDirSync(d)].map((e) => e.name);
    } catch {
      continue;
    }
    for (const n of names) {
      const m = TEMP.exec(n);
      if (!m) continue;
      const pid = Number(m[1] ?? m[2]);
      if (pid === Deno.pid) continue;
      try {
        Deno.statSync(`/proc/${pid}`);
        continue; // its owner is alive
      } catch { /* gone */ }
      await Deno.remove(`${d}/${n}`, { recursive: true }).catch(() => {});
    }
  }
}
