/**
 * Internal: views and their mount counts. `get` mounts a layer's view on the
 * first reference (in any process) and counts; `put` releases one and the
 * last one unmounts. Counts are one file per layer (`refcounts.ts`), changed
 * under the store lock. `get` and `put` check their own layer's mount with
 * one statx; the whole mount table is read on open, remove and commit
 * ({@link reconciled}), where a count whose mount is gone is dropped and a
 * mount nobody counted (its process died between mount and count) is
 * unmounted.
 *
 * The order of each step is what keeps counts exact across kill -9: a get
 * drops a stale count before it mounts and counts after (dying in between
 * leaves an uncounted mount, which open unmounts); a put unmounts before it
 * uncounts (dying in between leaves a count without its mount, which is
 * dropped). A count dropped without its puts takes its layer's holds
 * (`holds.ts`) with it, first: a hold is one unit of a count, and releasing
 * it later must not take a unit that is someone else's.
 *
 * @module
 */

import {
  LayerfsError,
  LayerInUse,
  LayerNotFound,
  LayerNotMounted,
} from "../errors.ts";
import {
  mountAt,
  type MountInfoEntry,
  readMountInfo,
} from "../mount/mountinfo.ts";
import {
  type MountPointState,
  mountPointState,
} from "../mount/_mount_point.ts";
import type { MountPlan } from "../mount/plan.ts";
import type { StoreContext } from "./_context.ts";
import { validateLayerId } from "./id.ts";
import { releaseDeadHolds } from "./dead_holds.ts";
import { dropAllHolds, dropHoldsOf } from "./holds.ts";
import { readMeta, readParents, writeMeta } from "./meta.ts";
import {
  migrateLegacyCounts,
  type MountCounts,
  readCount,
  readCounts,
  reconcileCounts,
  removeCount,
  type ViewState,
  writeCount,
  writeCounts,
} from "./refcounts.ts";

/**
 * Counts reconciled with mountinfo (caller holds the lock); persisted if
 * changed. The views that exited processes held (`holds.ts`) are given
 * back first, so open, remove and commit see them free.
 */
export async function reconciled(
  ctx: StoreContext,
): Promise<{ counts: MountCounts; info: MountInfoEntry[] }> {
  await migrateLegacyCounts(ctx.layout);
  try {
    await releaseDeadHolds(ctx.layout, ctx.mounter);
  } catch (e) {
    // A view that cannot be unmounted stays held (`layerfs check` reports
    // it); it must not make the store unopenable.
    if (!(e instanceof LayerfsError)) throw e;
  }
  const info = await readMountInfo();
  const raw = await readCounts(ctx.layout);
  const states = new Map<string, ViewState>();
  for (const id of Object.keys(raw)) {
    let parents: string[] | undefined;
    try {
      parents = await readParents(ctx.layout, validateLayerId(id));
    } catch {
      parents = undefined;
    }
    if (!parents) {
      states.set(id, "gone");
      continue;
    }
    const plan = await ctx.planFor(id, parents);
    states.set(
      id,
      plan.kind === "none"
        ? "no-mount"
        : mountAt(info, plan.target)
        ? "mounted"
        : "unmounted",
    );
  }
  const { counts, dropped } = reconcileCounts(raw, (id) => states.get(id)!);
  dropHoldsOf(ctx.layout, dropped);
  for (const id of dropped) {
    if (states.get(id) === "gone") removeCount(ctx.layout, id);
    else writeCount(ctx.layout, id, 0);
  }
  return { counts, info };
}

/** How many times `id` is in use: its count, or 1 for an uncounted mount of its view. */
export function usesOf(
  ctx: StoreContext,
  id: string,
  counts: MountCounts,
  info: MountInfoEntry[],
): number {
  const mounted = !!mountAt(info, ctx.layout.mnt(id));
  return Math.max(counts[id] ?? 0, mounted ? 1 : 0);
}

/**
 * What is at `plan.target` now: mounted or not, and whether the mount point
 * is missing (one statx; mountinfo only where the kernel cannot say).
 */
async function viewAt(
  plan: MountPlan,
): Promise<{ mounted: boolean; state: MountPointState }> {
  if (plan.kind === "none") return { mounted: false, state: "dir" };
  const state = mountPointState(plan.target);
  const mounted = state === "mount" ||
    (state === "unknown" && !!mountAt(await readMountInfo(), plan.target));
  return { mounted, state };
}

/** `get`: see Store.get. */
export function getView(
  ctx: StoreContext,
  id: string,
  mountLabel: string | undefined,
): Promise<string> {
  return ctx.locked(() => countView(ctx, id, mountLabel));
}

/** {@link getView} for a caller that holds the store lock. */
export async function countView(
  ctx: StoreContext,
  id: string,
  mountLabel: string | undefined,
): Promise<string> {
  const parents = await readParents(ctx.layout, id);
  if (!parents) throw new LayerNotFound(id);
  let meta = await readMeta(ctx.layout, id);
  if (mountLabel !== undefined && (meta.mountLabel ?? "") !== mountLabel) {
    // A mounted view keeps the label it was mounted with: a get asking for
    // another one would be handed a view without it.
    const was = ctx.plan(id, parents, meta);
    const users = readCount(ctx.layout, id);
    if (was.kind !== "none" && users > 0 && (await viewAt(was)).mounted) {
      throw new LayerInUse(id, users, "give a new mount label to");
    }
    meta = { ...meta, mountLabel: mountLabel || undefined };
    await writeMeta(ctx.layout, id, meta);
  }
  const plan = ctx.plan(id, parents, meta);
  let n = readCount(ctx.layout, id);
  const { mounted, state } = await viewAt(plan);
  let mountedHere = false;
  if (plan.kind !== "none" && !mounted) {
    if (n > 0) {
      // A count whose mount is gone (a manual umount, a reboot) is stale;
      // dropped before mounting, so dying after the mount cannot revive it.
      dropHoldsOf(ctx.layout, [id]);
      writeCount(ctx.layout, id, 0);
      n = 0;
    }
    if (state === "absent") {
      // Stores made before read-only base layers were bind-mounted have no mnt/<id> for them.
      Deno.mkdirSync(plan.target, { mode: 0o700 });
    }
    await ctx.mounter.mount(ctx.root, id, plan);
    mountedHere = true;
  }
  // A mount nobody counted (a process died between mount and count) is adopted here.
  try {
    writeCount(ctx.layout, id, n + 1);
  } catch (e) {
    // An uncounted mount would outlive every put: undo it before failing.
    if (mountedHere) {
      await ctx.mounter.unmount(ctx.root, id, plan.target).catch(() => {});
    }
    throw e;
  }
  return plan.target;
}

/** `put`: see Store.put. */
export function putView(ctx: StoreContext, id: string): Promise<void> {
  return ctx.locked(() => uncountView(ctx, id));
}

/** {@link putView} for a caller that holds the store lock. */
export async function uncountView(
  ctx: StoreContext,
  id: string,
): Promise<void> {
  const parents = await readParents(ctx.layout, id);
  if (!parents) throw new LayerNotFound(id);
  const plan = await ctx.planFor(id, parents);
  let n = readCount(ctx.layout, id);
  const { mounted } = await viewAt(plan);
  if (plan.kind !== "none" && !mounted && n > 0) {
    dropHoldsOf(ctx.layout, [id]);
    writeCount(ctx.layout, id, 0); // stale: its mount is gone
    n = 0;
  }
  if (n === 0 && !mounted) throw new LayerNotMounted(id);
  if (n <= 1 && mounted) {
    await ctx.mounter.unmount(ctx.root, id, plan.target);
  }
  // If this write fails the view is already released; the stale count is
  // dropped by the next get, put or reconcile.
  writeCount(ctx.layout, id, n - 1);
}

/** `cleanup`: unmounts every view under `mnt/` and forgets all counts. */
export async function unmountAll(ctx: StoreContext): Promise<void> {
  await ctx.locked(async () => {
    for (const [id, target] of await viewMounts(ctx)) {
      await ctx.mounter.unmount(ctx.root, id, target);
    }
    dropAllHolds(ctx.layout);
    await writeCounts(ctx.layout, {});
  });
}

/**
 * Unmounts views on `mnt/<id>` that no count accounts for (caller holds the
 * lock, so no `get` is between its mount and its count): a process that died
 * there, or a count write that failed, left them.
 */
export async function unmountUncounted(ctx: StoreContext): Promise<void> {
  const { counts } = await reconciled(ctx);
  for (const [id, target] of await viewMounts(ctx)) {
    if ((counts[id] ?? 0) > 0) continue;
    try {
      await ctx.mounter.unmount(ctx.root, id, target);
    } catch {
      /* reported by `layerfs check`; never makes the store unopenable */
    }
  }
}

/** Mounts directly on `mnt/<name>`, as [name, mount point], once each. */
async function viewMounts(ctx: StoreContext): Promise<[string, string][]> {
  const prefix = ctx.layout.mnt("");
  const seen = new Map<string, string>();
  for (const m of await readMountInfo()) {
    const rest = m.mountPoint.slice(prefix.length);
    if (m.mountPoint.startsWith(prefix) && rest && !rest.includes("/")) {
      seen.set(rest, m.mountPoint);
    }
  }
  return [...seen];
}
