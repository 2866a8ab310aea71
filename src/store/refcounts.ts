/**
 * Mount reference counts that survive the process: `run/mounts.json`,
 * guarded by an flock on `run/lock` and written crash-safely, then
 * reconciled with /proc/self/mountinfo so that a count whose mount is gone
 * (a reboot, a manual umount) is dropped (containers/storage keeps mount
 * counts in its layers.json the same way).
 *
 * @module
 */

import { writeFileAtomic } from "./_atomic.ts";
import type { StoreLayout } from "../layout.ts";

/** Outstanding `get`s per layer id. */
export type MountCounts = Record<string, number>;

/**
 * Runs `fn` holding the store's exclusive lock (flock on `run/lock`). The
 * lock is per open file, so it serialises callers within one process as well
 * as across processes; the kernel drops it when a holder dies.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { withStoreLock } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run`);
 * assert.equal(await withStoreLock(new StoreLayout(root), () => Promise.resolve(42)), 42);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function withStoreLock<T>(
  layout: StoreLayout,
  fn: () => Promise<T>,
): Promise<T> {
  const f = await Deno.open(`${layout.run}/lock`, {
    read: true,
    write: true,
    create: true,
  });
  try {
    await f.lock(true);
    return await fn();
  } finally {
    f.close(); // closing the file releases the flock
  }
}

/**
 * Reads `run/mounts.json` (missing or corrupt reads as no counts: the
 * reconciliation with mountinfo then adopts live mounts again).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readCounts, writeCounts } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run`);
 * const layout = new StoreLayout(root);
 * assert.deepEqual(await readCounts(layout), {}); // no file yet
 * await writeCounts(layout, { app: 2, gone: 0 });
 * assert.deepEqual(await readCounts(layout), { app: 2 });
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function readCounts(layout: StoreLayout): Promise<MountCounts> {
  try {
    const c = JSON.parse(await Deno.readTextFile(`${layout.run}/mounts.json`));
    const out: MountCounts = {};
    for (const [k, v] of Object.entries(c)) {
      if (typeof v === "number" && v > 0 && Number.isInteger(v)) out[k] = v;
    }
    return out;
  } catch {
    return {};
  }
}

/**
 * Writes `run/mounts.json` atomically (temp + rename), without fsync: the
 * counts must survive a killed process, which a rename does, but not a power
 * loss, after which nothing is mounted and reconciliation drops them anyway.
 * Skipping the two fsyncs is most of what a `get` cost.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { writeCounts } from "./refcounts.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run`);
 * await writeCounts(new StoreLayout(root), { app: 1, gone: 0 });
 * assert.deepEqual(JSON.parse(await Deno.readTextFile(`${root}/run/mounts.json`)), { app: 1 });
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function writeCounts(
  layout: StoreLayout,
  counts: MountCounts,
): Promise<void> {
  const clean: MountCounts = {};
  for (const k of Object.keys(counts).sort()) {
    if (counts[k] > 0) clean[k] = counts[k];
  }
  await writeFileAtomic(
    `${layout.run}/mounts.json`,
    JSON.stringify(clean) + "\n",
    { durable: false },
  );
}

/** How a counted layer's view looks now, for {@link reconcileCounts}. */
export type ViewState = "gone" | "unmounted" | "mounted" | "no-mount";

/**
 * Drops counts that reality contradicts: layers that no longer exist, and
 * layers whose view needs a mount that is not there. Pure.
 *
 * @example
 * ```ts
 * import { reconcileCounts } from "./refcounts.ts";
 * import assert from "node:assert/strict";
 * const state = (id: string) => id === "a" ? "unmounted" as const : "mounted" as const;
 * assert.deepEqual(reconcileCounts({ a: 2, b: 1 }, state), { counts: { b: 1 }, dropped: ["a"] });
 * ```
 */
export function reconcileCounts(
  counts: MountCounts,
  state: (id: string) => ViewState,
): { counts: MountCounts; dropped: string[] } {
  const out: MountCounts = {};
  const dropped: string[] = [];
  for (const [id, n] of Object.entries(counts)) {
    const s = state(id);
    if (s === "gone" || s === "unmounted") dropped.push(id);
    else out[id] = n;
  }
  return { counts: out, dropped };
}
