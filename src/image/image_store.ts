/**
 * The image store, beside the layers: `<root>/images/`.
 *
 * ```
 * images/index.json            { version, images: { <id hex>: record }, refs: { "name:tag": <id hex> },
 *                              released: { <chain id>: <image id> } } (src/image_index.ts)
 * images/blobs/sha256/<hex>    manifests and configs, content-addressed, the bytes as loaded
 * images/lock                  flock held while references change
 * images/locks/<chain id>      per-layer flocks held while a load extracts, reuses or rolls back;
 *                              deleted by their holder on release (and by the store's recovery
 *                              when nobody holds one), so they do not accumulate
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

import { ImageNotFound, InvalidReference, StoreError } from "../errors.ts";
import {
  type ImageIndex,
  imageIndexPath,
  readImageIndex,
} from "../image_index.ts";
import { nameCandidates, parseReference } from "./reference.ts";
import { syncDir } from "../store/_atomic.ts";
import { exists } from "../_fs.ts";
import type { Store } from "../store/store.ts";
import { StoreLayout } from "../layout.ts";
import { imageLeftovers, removeLockFile } from "../store/recovery.ts";

export type { ImageIndex, ImageRecord } from "../image_index.ts";

/** What the image store needs of a store: its root (so `layerfs check` can pass just that). */
export type StoreRoot = Pick<Store, "root">;

/** Where the image store of `store` lives. */
export function imagesDir(store: StoreRoot): string {
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

/** A per-layer lock taken with {@link flock}. */
export interface LayerLock {
  /** Deletes the lock file (while still holding it) and releases the flock. */
  close(): void;
}

/**
 * An exclusive flock on `path` (created if missing), held until `close`,
 * which deletes the file. Lock files are deleted by whoever holds them
 * (here on release, or recovery's `removeLockFile` when nobody does), so a
 * taker checks after its flock that `path` still names the file it locked,
 * and retries on the new one otherwise: two takers never hold "the same"
 * lock on two different files.
 */
export async function flock(path: string): Promise<LayerLock> {
  return (await takeFlock(path, true))!;
}

/**
 * {@link flock} without waiting: undefined when another holder has it (a
 * load or pull is working on that layer).
 */
export async function tryFlock(path: string): Promise<LayerLock | undefined> {
  return await takeFlock(path, false);
}

async function takeFlock(
  path: string,
  wait: boolean,
): Promise<LayerLock | undefined> {
  for (;;) {
    const f = await Deno.open(path, { read: true, write: true, create: true });
    try {
      if (wait) await f.lock(true);
      else if (!(await f.tryLock(true))) {
        f.close();
        return undefined;
      }
      const [a, b] = [await f.stat(), await Deno.lstat(path).catch(() => null)];
      if (b && a.ino === b.ino && a.dev === b.dev) {
        return {
          close() {
            try {
              Deno.removeSync(path);
            } catch { /* gone already: nothing to keep clean */ }
            f.close();
          },
        };
      }
    } catch (e) {
      f.close();
      throw e;
    }
    f.close(); // deleted or replaced while we waited: take the new one
  }
}

/** The path of layer `id`'s lock file (`images/locks/<id>`). */
export function layerLockPath(store: StoreRoot, id: string): string {
  return `${imagesDir(store)}/locks/${id}`;
}

/**
 * Whether a load or pull holds layer `id`'s lock right now (it is making or
 * reusing that layer and has not written its image's references yet).
 * Read-only: a missing lock file is not created.
 */
export async function layerBusy(
  store: StoreRoot,
  id: string,
): Promise<boolean> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(layerLockPath(store, id), { read: true, write: true });
  } catch {
    return false;
  }
  try {
    return !(await f.tryLock(true));
  } finally {
    f.close();
  }
}

/** Whether a load or pull holds any layer's lock right now. */
export async function anyLayerBusy(store: StoreRoot): Promise<boolean> {
  let names: string[];
  try {
    names = (await Array.fromAsync(Deno.readDir(`${imagesDir(store)}/locks`)))
      .map((e) => e.name);
  } catch {
    return false;
  }
  for (const n of names) if (await layerBusy(store, n)) return true;
  return false;
}

/** Runs `fn` under `images/lock`. */
export async function withImagesLock<T>(
  store: StoreRoot,
  fn: () => Promise<T>,
): Promise<T> {
  const dir = imagesDir(store);
  await ensureDirs(dir);
  return await withFlock(`${dir}/lock`, fn);
}

/** Reads `images/index.json` (an empty index when there is none). */
export async function readIndex(store: StoreRoot): Promise<ImageIndex> {
  return await readImageIndex(store.root);
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
export async function writeIndex(
  store: StoreRoot,
  idx: ImageIndex,
): Promise<void> {
  await writeAtomic(
    imageIndexPath(store.root),
    new TextEncoder().encode(JSON.stringify(idx, null, 1) + "\n"),
  );
}

/**
 * Drops the `released` entries of layers that are gone (under
 * `images/lock`): a layer made again under the same id later is not
 * taken for one a removed image left.
 */
export async function forgetReleased(
  store: StoreRoot,
  gone: readonly string[],
): Promise<void> {
  // A store that never held an image has nothing to forget (and gets no
  // images/ dir from this).
  if (!(await exists(imageIndexPath(store.root)))) return;
  await withImagesLock(store, async () => {
    const idx = await readIndex(store);
    const released = idx.released ?? {};
    const drop = gone.filter((id) => Object.hasOwn(released, id));
    if (drop.length === 0) return;
    for (const id of drop) delete released[id];
    if (Object.keys(released).length === 0) delete idx.released;
    await writeIndex(store, idx);
  });
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
 * The name of the index that `ref` names, or undefined: `ref` as stored
 * (`name` meaning `name:latest`), else the first of its
 * {@link nameCandidates} that a stored name stands for too. So a pulled
 * `docker.io/library/alpine:latest` is found as `alpine`, `alpine:latest`,
 * `library/alpine` or `docker.io/alpine`, a loaded `myimg:1` also as
 * `localhost/myimg:1` (podman's name for it), and a pulled
 * `localhost/app:1` as `app:1`. A stored name spelled exactly as the
 * candidate wins over others that stand for it.
 *
 * @throws {InvalidReference} when a candidate stands for names of different images.
 */
export function resolveName(
  idx: ImageIndex,
  ref: string,
): string | undefined {
  for (const k of [ref, withTag(ref)]) {
    if (Object.hasOwn(idx.refs, k)) return k;
  }
  const want = nameCandidates(ref);
  if (!want) return undefined;
  const stored = Object.keys(idx.refs).sort().map((s) => ({
    s,
    names: nameCandidates(s) ?? [],
  }));
  for (const key of want) {
    const hits = stored.filter((x) => x.names.includes(key)).map((x) => x.s);
    if (hits.length === 0) continue;
    if (hits.includes(key)) return key;
    if (new Set(hits.map((h) => idx.refs[h])).size > 1) {
      throw new InvalidReference(
        ref,
        `it stands for names of different images (${
          hits.join(", ")
        }); name one of them in full`,
      );
    }
    return hits[0];
  }
  return undefined;
}

/**
 * Resolves `ref` (a name, see {@link resolveName}; `sha256:<id>`, a 64-hex
 * id, a unique id prefix of at least 12 hex chars, or a manifest digest:
 * `sha256:<manifest>`, `name@sha256:<manifest>`) to an image id hex.
 *
 * @throws {ImageNotFound}
 * @throws {InvalidReference} a short name standing for names of different images.
 */
export function resolveRef(idx: ImageIndex, ref: string): string {
  const name = resolveName(idx, ref);
  if (name !== undefined) return idx.refs[name];
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

/**
 * A name to give an image (load's `tag`, `tagImage`) must be one pull, push
 * and save can take back: checked before anything is read or stored.
 *
 * @throws {InvalidReference} Not an image name, or one with a digest.
 */
export function checkTag(tag: string): void {
  parseReference(tag);
  if (tag.includes("@")) {
    throw new InvalidReference(
      tag,
      "a tag cannot carry a digest (pass NAME[:TAG])",
    );
  }
}

/** `name` with `:latest` when it has no tag. */
export function withTag(ref: string): string {
  const slash = ref.lastIndexOf("/");
  return ref.indexOf(":", slash + 1) >= 0 || ref.includes("@")
    ? ref
    : `${ref}:latest`;
}

/**
 * Removes temp entries under `images/` (and `images/blobs/sha256/`) left by
 * processes that are gone (a crash in the middle of a load or save), and
 * lock files nobody holds: the rules of `src/store/recovery.ts`
 * (`imageLeftovers`), which the store's open-time sweep and `layerfs check`
 * apply too.
 */
export async function sweepImageTemps(store: Store): Promise<void> {
  for (const { kind, path } of await imageLeftovers(layoutOf(store))) {
    const abs = `${store.root}/${path}`;
    if (kind === "lock") await removeLockFile(abs);
    else await Deno.remove(abs, { recursive: true }).catch(() => {});
  }
}

function layoutOf(store: Store): StoreLayout {
  return new StoreLayout(store.root);
}

/** An image whose layers are not all in the store any more. */
export interface DanglingImage {
  /** Image id. */
  id: string;
  /** Its references. */
  refs: string[];
  /** Its layers that are gone. */
  missing: string[];
}

/**
 * Images of the index with a layer the store no longer has (a `layerfs rm`
 * of an image's layer); with `drop`, their records and references are
 * removed from the index (config and manifest blobs no other image names go
 * too). A caller that drops holds `images/lock` ({@link withImagesLock}),
 * taken before the store lock: every other path takes them in that order
 * (rmi, load and pull hold the images lock while the store locks), so
 * taking it here, under the store lock, could deadlock with them.
 *
 * @param store The store (its root).
 * @param live Ids of the layers that exist.
 * @param drop Remove them from the index.
 */
export async function danglingImages(
  store: StoreRoot,
  live: Set<string>,
  drop: boolean,
): Promise<DanglingImage[]> {
  const scan = async () => {
    const idx = await readIndex(store);
    const before = { ...idx.images };
    const out: DanglingImage[] = [];
    for (const [hex, r] of Object.entries(idx.images)) {
      const missing = r.layers.filter((l) => !live.has(l));
      if (missing.length === 0) continue;
      const refs = Object.keys(idx.refs).filter((k) => idx.refs[k] === hex);
      out.push({ id: r.id, refs, missing });
      if (!drop) continue;
      for (const k of refs) delete idx.refs[k];
      delete idx.images[hex];
    }
    if (drop && out.length > 0) {
      // Their layers that are still there are no image's now, and no
      // interruption left them: released, as `removeImage` releases them.
      const named = new Set(
        Object.values(idx.images).flatMap((r) => r.layers),
      );
      for (const d of out) {
        for (const l of before[d.id.slice(7)].layers) {
          if (live.has(l) && !named.has(l)) (idx.released ??= {})[l] = d.id;
        }
      }
      await writeIndex(store, idx);
      const used = new Set<string>();
      for (const r of Object.values(idx.images)) {
        used.add(r.id.slice(7));
        if (r.manifest) used.add(r.manifest.slice(7));
      }
      for (const d of out) {
        if (used.has(d.id.slice(7))) continue;
        await Deno.remove(`${imagesDir(store)}/blobs/sha256/${d.id.slice(7)}`)
          .catch(() => {});
      }
    }
    return out;
  };
  try {
    await Deno.lstat(`${imagesDir(store)}/index.json`);
  } catch {
    return [];
  }
  return await scan();
}
