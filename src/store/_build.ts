/**
 * Internal: making layers. A new layer is built in `staging/` (holding an
 * flock that tells the sweep its builder is alive) and published under the
 * store lock with one rename; `layers/<id>` is written last and is the
 * commit point. A layer is never filled twice: `create` and `applyDiff` make
 * a new layer or fail with `LayerExists`. `commit` turns a read-write layer
 * into a read-only one by renames, without copying.
 *
 * @module
 */

import type { LayerDirs } from "../archive/types.ts";
import { isDirectory } from "../_fs.ts";
import {
  LayerDamaged,
  LayerExists,
  LayerHasChildren,
  LayerInUse,
  LayerNotWritable,
  ParentNotCommitted,
  ParentNotFound,
  StoreError,
} from "../errors.ts";
import { copyTree } from "../sys/copy_tree_linux.ts";
import { syncDir } from "./_atomic.ts";
import type { StoreContext } from "./_context.ts";
import { removeIfPresent, rmdirIfPresent } from "./_fs.ts";
import { purgeLayer } from "./_remove.ts";
import { reconciled, usesOf } from "./_views.ts";
import { readMeta, readParents, writeMeta, writeParents } from "./meta.ts";
import { removeCount } from "./refcounts.ts";

/** What to build. */
export interface BuildOptions<R> {
  /** A container's writable layer. */
  readWrite: boolean;
  /** SELinux label for its view. */
  mountLabel?: string;
  /** Made by an image load or pull (see LayerMeta.imageLayer). */
  imageLayer?: boolean;
  /**
   * Fills the staged dir (an archive apply); runs without the store lock.
   * A tar-split record it writes to `record` is published with the layer.
   */
  fill?: (dirs: LayerDirs, record: string) => Promise<R>;
  /**
   * Settles when `parent` has been published (an image load extracting
   * layers in parallel): the fill starts at once and the parent is checked
   * when this layer publishes (backends that copy the parent wait for it
   * before the copy). A rejection fails the build.
   */
  parentReady?: Promise<void>;
}

interface Staging {
  path: string;
  lock: Deno.FsFile;
}

/**
 * Builds and publishes a new layer `id` on `parent` (both validated).
 *
 * @throws {LayerExists} {ParentNotFound} {ParentNotCommitted} {StoreError}
 */
export async function buildLayer<R>(
  ctx: StoreContext,
  id: string,
  parent: string | undefined,
  opts: BuildOptions<R>,
): Promise<R | undefined> {
  const l = ctx.layout;
  let parents: string[] = [];
  // The parent existed once this build began (checked, or made by the
  // load that waits for it): gone at publish, it was removed meanwhile.
  let parentSeen = false;
  // Checked before anything is read, and again at publish: the store lock is
  // not held while the layer is filled.
  const check = async () => {
    if (await readParents(l, id)) throw new LayerExists(id);
    if (parent === undefined) return [];
    const pp = await readParents(l, parent);
    if (!pp) throw new ParentNotFound(id, parent, parentSeen);
    parentSeen = true;
    if ((await readMeta(l, parent)).readWrite) {
      throw new ParentNotCommitted(id, parent);
    }
    // Else a child of a parent whose content is gone would be published,
    // damaged from birth (overlay reads no parent dir until a mount).
    await requireContent(ctx, parent);
    const chain = [parent, ...pp];
    const max = ctx.backend.capabilities.maxDepth;
    if (chain.length > max) {
      throw new StoreError(
        `Cannot create layer "${id}": its chain would have ${chain.length} parents and ` +
          `${ctx.backend.name} stacks at most ${max}; squash the chain (layerfs diff ${parent} --parent <ancestor>)`,
      );
    }
    return chain;
  };
  const early = opts.parentReady !== undefined;
  const staging = await ctx.locked(async () => {
    if (!early) parents = await check();
    else if (await readParents(l, id)) throw new LayerExists(id);
    return await newStaging(ctx, id);
  });
  try {
    const diff = `${staging.path}/diff`;
    await Deno.mkdir(diff);
    await Deno.chmod(diff, 0o755); // exactly 0755 whatever the umask
    if (ctx.backend.capabilities.copiesParent && parent !== undefined) {
      if (early) {
        await opts.parentReady;
        parentSeen = true;
        parents = await ctx.locked(check);
      }
      copyLayer(l.diff(parent), diff, parent);
    }
    const record = `${staging.path}/tarsplit`;
    const result = opts.fill
      ? await opts.fill(ctx.dirs(diff, parents), record)
      : undefined;
    await opts.parentReady;
    parentSeen ||= early;
    await ctx.locked(async () => {
      parents = await check();
      await purgeLayer(ctx, id); // leftovers of a crashed earlier attempt
      try {
        await Deno.rename(diff, l.diff(id));
        if (ctx.backend.capabilities.mounts) {
          await Deno.mkdir(l.mnt(id), { mode: 0o700 });
        }
        await ctx.backend.prepareLayer(l, id);
        await syncDir(`${ctx.root}/diff`);
        await publishRecord(record, l.tarsplit(id));
        await writeMeta(l, id, {
          readWrite: opts.readWrite,
          mountLabel: opts.mountLabel || undefined,
          imageLayer: opts.imageLayer ? true : undefined,
        });
        await writeParents(l, id, parents); // commit point
      } catch (e) {
        // Not committed: nothing of it may stay (the error says why it failed).
        await purgeLayer(ctx, id).catch(() => {});
        throw e;
      }
    });
    return result;
  } finally {
    staging.lock.close();
    await removeIfPresent(staging.path, true).catch(() => {});
  }
}

/**
 * `commit`: read-write layer `from` becomes read-only layer `to` (caller
 * validated both). Order, for crash safety: `meta/<to>` with
 * `committedFrom`; `layers/<from>` renamed to `layers/<to>` (the commit
 * point: `from` is gone and `to` exists in one step); `diff/<from>` renamed
 * to `diff/<to>`; the backend's entries remade; `committedFrom` cleared.
 * Recovery finishes a commit that died after its commit point.
 *
 * @throws {LayerNotFound} {LayerExists} {LayerNotWritable} {LayerInUse} {LayerHasChildren}
 */
export async function commitLayer(
  ctx: StoreContext,
  from: string,
  to: string,
): Promise<void> {
  const l = ctx.layout;
  await ctx.locked(async () => {
    await ctx.parentsOf(from);
    const meta = await readMeta(l, from);
    if (!meta.readWrite) throw new LayerNotWritable(from);
    // Checked before the commit point: after it, a missing dir would leave
    // the new layer damaged and nothing for recovery to finish with.
    await requireContent(ctx, from);
    if (await readParents(l, to)) throw new LayerExists(to);
    const { counts, info } = await reconciled(ctx);
    const n = usesOf(ctx, from, counts, info);
    if (n > 0) throw new LayerInUse(from, n, "commit");
    const children = (await ctx.children()).get(from) ?? [];
    if (children.length) throw new LayerHasChildren(from, children);
    await purgeLayer(ctx, to); // leftovers of a crashed earlier attempt
    await writeMeta(l, to, { ...meta, readWrite: false, committedFrom: from });
    await Deno.rename(l.layers(from), l.layers(to)); // commit point
    await syncDir(l.layers());
    await Deno.rename(l.diff(from), l.diff(to));
    await syncDir(`${ctx.root}/diff`);
    await ctx.backend.removeLayer(l, from);
    await rmdirIfPresent(l.mnt(from));
    await removeIfPresent(l.meta(from), false);
    removeCount(l, from); // its last put left a 0 there; the id is gone
    await ctx.backend.prepareLayer(l, to);
    if (ctx.backend.capabilities.mounts) {
      await Deno.mkdir(l.mnt(to), { mode: 0o700 });
    }
    await writeMeta(l, to, { readWrite: false, mountLabel: meta.mountLabel });
  });
}

/** Throws LayerDamaged when layer `id`'s content dir `diff/<id>` is gone. */
async function requireContent(ctx: StoreContext, id: string): Promise<void> {
  if (await isDirectory(ctx.layout.diff(id))) return;
  throw new LayerDamaged(
    id,
    `diff/${id} is missing (the layer's content is gone)`,
    { root: ctx.root },
  );
}

/** Creates a staging entry holding a live flock (caller holds the store lock). */
async function newStaging(ctx: StoreContext, id: string): Promise<Staging> {
  const path = ctx.layout.staging(`${id}.${crypto.randomUUID().slice(0, 8)}`);
  await Deno.mkdir(path, { mode: 0o700 });
  const lock = await Deno.open(`${path}/lock`, {
    read: true,
    write: true,
    create: true,
  });
  await lock.lock(true);
  return { path, lock };
}

/** copyTree with its SysError turned into an actionable StoreError. */
function copyLayer(src: string, dst: string, id: string): void {
  try {
    copyTree(src, dst);
  } catch (e) {
    throw new StoreError(
      `Copying layer "${id}" failed (${(e as Error).message}); ` +
        "check free space and that the layer was not removed meanwhile",
      { cause: e },
    );
  }
}

/**
 * Moves a fill's tar-split record to `tarsplit/<id>` (before the commit
 * point: a crash leaves an orphan the sweep deletes). No record, no move.
 */
async function publishRecord(from: string, to: string): Promise<void> {
  try {
    await Deno.rename(from, to);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    try {
      await Deno.lstat(from);
    } catch {
      return; // nothing recorded
    }
    // A store made before records existed has no tarsplit/ yet.
    await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    await Deno.rename(from, to);
  }
  await syncDir(to.slice(0, to.lastIndexOf("/")));
}
