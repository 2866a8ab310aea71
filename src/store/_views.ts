/**
 * Internal: views and their mount counts. `get` mounts a layer's view on the
 * first reference (in any process) and counts; `put` releases one and the
 * last one unmounts. Counts live in `run/mounts.json` under the store lock
 * and are reconciled with /proc/self/mountinfo on every call, so a count
 * whose mount is gone is dropped, and a mount nobody counted (its process
 * died between mount and count) is adopted by `get` or unmounted on open.
 *
 * @module
 */

import { LayerNotFound, LayerNotMounted } from "../errors.ts";
import {
  mountAt,
  type MountInfoEntry,
  readMountInfo,
} from "../mount/mountinfo.ts";
import { isMountPoint } from "../mount/_mount_point.ts";
import type { MountPlan } from "../mount/plan.ts";
import type { StoreContext } from "./_context.ts";
import { validateLayerId } from "./id.ts";
import { readMeta, readParents, writeMeta } from "./meta.ts";
import {
  type MountCounts,
  readCounts,
  reconcileCounts,
  type ViewState,
  writeCounts,
} from "./refcounts.ts";

/** Counts reconciled with mountinfo (caller holds the lock); persisted if changed. */
export async function reconciled(
  ctx: StoreContext,
): Promise<{ counts: MountCounts; info: MountInfoEntry[] }> {
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
  if (dropped.length) await writeCounts(ctx.layout, counts);
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

/** Whether `target` is mounted: one statx, or mountinfo where the kernel cannot say. */
async function mountedAt(target: string): Promise<boolean> {
  return isMountPoint(target) ?? !!mountAt(await readMountInfo(), target);
}

/**
 * The counts with `id`'s own count reconciled (caller holds the lock): get
 * and put touch one layer, so they check one mount, not the whole table
 * (the full {@link reconciled} runs on open, remove and commit).
 */
async function countsFor(
  ctx: StoreContext,
  id: string,
  plan: MountPlan,
): Promise<{ counts: MountCounts; mounted: boolean }> {
  const counts = await readCounts(ctx.layout);
  const mounted = plan.kind !== "none" && await mountedAt(plan.target);
  // A count whose mount is gone (a manual umount, a reboot) is stale.
  if (plan.kind !== "none" && !mounted) delete counts[id];
  return { counts, mounted };
}

/** `get`: see Store.get. */
export async function getView(
  ctx: StoreContext,
  id: string,
  mountLabel: string | undefined,
): Promise<string> {
  return await ctx.locked(async () => {
    const parents = await readParents(ctx.layout, id);
    if (!parents) throw new LayerNotFound(id);
    let meta = await readMeta(ctx.layout, id);
    if (mountLabel !== undefined && (meta.mountLabel ?? "") !== mountLabel) {
      meta = { ...meta, mountLabel: mountLabel || undefined };
      await writeMeta(ctx.layout, id, meta);
    }
    const plan = ctx.plan(id, parents, meta);
    const { counts, mounted } = await countsFor(ctx, id, plan);
    let mountedHere = false;
    if (plan.kind !== "none" && !mounted) {
      // Stores made before read-only base layers were bind-mounted have no mnt/<id> for them.
      await Deno.mkdir(plan.target, { mode: 0o700 }).catch((e) => {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      });
      await ctx.mounter.mount(ctx.root, id, plan);
      mountedHere = true;
    }
    // A mount nobody counted (a process died between mount and count) is adopted here.
    counts[id] = (counts[id] ?? 0) + 1;
    try {
      await writeCounts(ctx.layout, counts);
    } catch (e) {
      // An uncounted mount would outlive every put: undo it before failing.
      if (mountedHere) {
        await ctx.mounter.unmount(ctx.root, id, plan.target).catch(() => {});
      }
      throw e;
    }
    return plan.target;
  });
}

/** `put`: see Store.put. */
export async function putView(ctx: StoreContext, id: string): Promise<void> {
  await ctx.locked(async () => {
    const parents = await readParents(ctx.layout, id);
    if (!parents) throw new LayerNotFound(id);
    const plan = await ctx.planFor(id, parents);
    const { counts, mounted } = await countsFor(ctx, id, plan);
    const n = counts[id] ?? 0;
    if (n === 0 && !mounted) throw new LayerNotMounted(id);
    if (n > 1) counts[id] = n - 1;
    else delete counts[id];
    if (n <= 1 && mounted) {
      await ctx.mounter.unmount(ctx.root, id, plan.target);
    }
    // If this write fails the view is already released; the stale count is
    // dropped by the next reconcile.
    await writeCounts(ctx.layout, counts);
  });
}

/** `cleanup`: unmounts every view under `mnt/` and forgets all counts. */
export async function unmountAll(ctx: StoreContext): Promise<void> {
  await ctx.locked(async () => {
    for (const [id, target] of await viewMounts(ctx)) {
      await ctx.mounter.unmount(ctx.root, id, target);
    }
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
